"""Training progress to the control plane: rank 0 POSTs a TrainingProgress to $THINKUBE_PROGRESS_URL.

Never in training's way: a background thread does the sending, each POST with a short
timeout; a newer report replaces one not yet sent; failures are a WARNING at most once a
minute and never raise. The bearer token is read from its file for every POST, because the
kubelet rotates the projected token, and is never logged.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import httpx

from thinkube.api.resources.sft import TrainingProgress
from thinkube.constants import ENV_PROGRESS_EVERY_S, ENV_PROGRESS_TOKEN_FILE, ENV_PROGRESS_URL

log = logging.getLogger(__name__)

EVERY_S = 10.0
TIMEOUT_S = 5.0
WARN_EVERY_S = 60.0


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(x: float | None) -> float | None:
    # JSON has no NaN or infinity; a diverged loss is reported as unknown rather than not at all.
    return float(x) if x is not None and math.isfinite(x) else None


def training_progress(row: Mapping, total_steps: int, steps_per_epoch: int | None, now: str) -> TrainingProgress:
    """A metrics.jsonl row (as workloads.training.progress writes it) as the status figures."""
    step = int(row["step"])
    return TrainingProgress(
        step=step,
        total_steps=total_steps,
        epoch=step / steps_per_epoch if steps_per_epoch else None,
        loss=_finite(row.get("loss")),
        tokens_per_second=_finite(row.get("tokens_per_s")),
        eta_seconds=_finite(row.get("eta_s")),
        updated_at=now,
    )


class Reporter:
    """Sends the newest report at most every `every_s` seconds, and the final one always."""

    def __init__(
        self,
        url: str,
        token_file: str | None,
        *,
        every_s: float = EVERY_S,
        timeout_s: float = TIMEOUT_S,
        warn_every_s: float = WARN_EVERY_S,
    ):
        self.url, self.token_file, self.every_s, self.timeout_s = url, token_file, every_s, timeout_s
        self.warn_every_s = warn_every_s
        self._accepted = -math.inf  # monotonic time of the last report taken
        self._warned = -math.inf
        self._failures = 0  # since the last warning
        self._pending: TrainingProgress | None = None
        self._closing = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="progress-report", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Reporter | None:
        """The reporter the environment asks for; None when no URL is set."""
        url = environ.get(ENV_PROGRESS_URL)
        if not url:
            return None
        every_s = EVERY_S
        if text := environ.get(ENV_PROGRESS_EVERY_S):
            try:
                every_s = max(float(text), 0.0)
            except ValueError:
                log.warning(
                    "%s=%r is not a number of seconds; reporting every %.0f s", ENV_PROGRESS_EVERY_S, text, EVERY_S
                )
        return cls(url, environ.get(ENV_PROGRESS_TOKEN_FILE) or None, every_s=every_s)

    def report(self, progress: TrainingProgress, *, final: bool = False) -> None:
        """Queue a report (dropped when the last one taken is under `every_s` old, unless final)."""
        now = time.monotonic()
        if not final and now - self._accepted < self.every_s:
            return
        self._accepted = now
        with self._wake:
            self._pending = progress
            self._wake.notify()

    def report_row(self, row: Mapping, total_steps: int, steps_per_epoch: int | None = None) -> None:
        """Queue a metrics row as a report; the last step's always."""
        final = row["step"] >= total_steps
        if not final and time.monotonic() - self._accepted < self.every_s:
            return  # not even built: most steps are not reported
        try:
            progress = training_progress(row, total_steps, steps_per_epoch, utc_now())
        except Exception as e:  # noqa: BLE001 - a figure that fails validation must not stop training
            self._failed(e)
            return
        self.report(progress, final=final)

    def close(self, wait_s: float | None = None) -> None:
        """Send what is queued (waiting at most `wait_s`, default the POST timeout), then stop."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(self.timeout_s if wait_s is None else wait_s)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                with self._wake:
                    while self._pending is None and not self._closing:
                        self._wake.wait()
                    progress, self._pending = self._pending, None
                if progress is None:
                    return  # closing, and nothing left to send
                self._send(client, progress)

    def _send(self, client: httpx.Client, progress: TrainingProgress) -> None:
        try:
            headers = {"Content-Type": "application/json"}
            if self.token_file:
                headers["Authorization"] = f"Bearer {Path(self.token_file).read_text().strip()}"
            body = progress.model_dump_json(by_alias=True, exclude_none=True)
            client.post(self.url, content=body, headers=headers).raise_for_status()
        except Exception as e:  # noqa: BLE001 - whatever goes wrong, training goes on
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._warned < self.warn_every_s:
            return
        self._warned = now
        # The reason only: httpx errors name the URL and status, never the request's headers.
        reason = (
            f"HTTP {e.response.status_code}" if isinstance(e, httpx.HTTPStatusError) else f"{type(e).__name__}: {e}"
        )
        log.warning(
            "progress report to %s failed (%s; %d failure(s) since the last warning); training continues",
            self.url,
            reason,
            self._failures,
        )
        self._failures = 0
