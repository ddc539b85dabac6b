"""Training progress: metrics.jsonl rows, the best-effort POST, what the progress helper shows,
and the reports to the control plane (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from thinkube.api.resources.sft import TrainingProgress
from thinkube.constants import ENV_PROGRESS_EVERY_S, ENV_PROGRESS_TOKEN_FILE, ENV_PROGRESS_URL
from thinkube.workloads.serving.process import free_port
from thinkube.workloads.training.progress import METRICS_FILE, Progress
from thinkube.workloads.training.progress_report import Reporter, training_progress, utc_now

ROW = {"step": 1, "loss": 2.5, "lr": 1e-5, "grad_norm": 0.5, "tokens": 1000, "step_seconds": 0.5, "epoch": 0}


def test_rows_are_written_and_shown(tmp_path, caplog):
    p = Progress(tmp_path, total_steps=4, start_step=0)
    with caplog.at_level(logging.INFO):
        for step in range(1, 5):
            p.step({**ROW, "step": step})
    rows = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert rows[0]["tokens_per_s"] == 2000 and rows[0]["total_steps"] == 4 and "eta_s" in rows[0]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # Shown through the progress helper: a line at most every 10 s and at the last step, not one per step.
    assert "train: 2/4 steps" not in caplog.text
    assert "train: 4/4 steps" in caplog.text and "loss 2.5000 lr 1.000e-05" in caplog.text
    assert "tokens/s 2000 eta 0:00:00" in caplog.text


# ---------------------------------------------------------------- reports to the control plane

TOKEN = "sa-token-that-must-never-be-logged"


class ProgressServer:
    """Records each POST (path, Authorization header, JSON body) and answers `status`;
    `on_post(n)` runs before the answer to the n-th POST (1-based)."""

    def __init__(self, status: int = 204, on_post: Callable[[int], None] | None = None):
        self.posts: list[tuple[str, str | None, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((self.path, self.headers.get("Authorization"), body))
                if on_post:
                    on_post(len(outer.posts))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1/namespaces/ns/sftruns/r/progress"

    def __enter__(self) -> ProgressServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def steps(self) -> list[int]:
        return [body["step"] for _, _, body in self.posts]


def wait_for(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")  # as a mounted file may end
    return path


def test_reports_are_throttled_camel_case_and_carry_the_token(tmp_path):
    with ProgressServer() as server:
        reporter = Reporter(server.url, str(token_file(tmp_path)), every_s=60)
        for step in range(1, 6):
            reporter.report_row({**ROW, "step": step, "tokens_per_s": 2000.0, "eta_s": 5.0 - step}, 5, 2)
            wait_for(lambda: len(server.posts) > 0)  # else the last one would replace the first, unsent
        reporter.close()
    # The first report, then nothing for every_s, but the last step always.
    assert server.steps() == [1, 5]
    path, auth, body = server.posts[-1]
    assert path == "/v1/namespaces/ns/sftruns/r/progress" and auth == f"Bearer {TOKEN}"
    assert TrainingProgress.model_validate(body) == TrainingProgress.model_validate(
        {
            "step": 5,
            "totalSteps": 5,
            "epoch": 2.5,
            "loss": 2.5,
            "tokensPerSecond": 2000.0,
            "etaSeconds": 0.0,
            "updatedAt": body["updatedAt"],
        }
    )


def test_the_newest_report_replaces_one_not_yet_sent(tmp_path):
    release = threading.Event()
    with ProgressServer(on_post=lambda n: n == 1 and release.wait(10)) as server:
        reporter = Reporter(server.url, str(token_file(tmp_path)), every_s=0)
        reporter.report_row({**ROW, "step": 1}, 4)
        wait_for(lambda: len(server.posts) == 1)
        t0 = time.monotonic()
        for step in (2, 3, 4):  # while the first POST hangs
            reporter.report_row({**ROW, "step": step}, 4)
        assert time.monotonic() - t0 < 0.5  # queuing never waits for the network
        release.set()
        reporter.close()
    assert server.steps() == [1, 4]


def warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("listening", [True, False], ids=["http-500", "not-listening"])
def test_failures_warn_once_a_minute_and_never_log_the_token(tmp_path, caplog, listening):
    with ProgressServer(status=500) as server:
        url = server.url if listening else f"http://127.0.0.1:{free_port()}/progress"
        reporter = Reporter(url, str(token_file(tmp_path)), every_s=0, timeout_s=2)
        with caplog.at_level(logging.DEBUG):
            for step in range(1, 5):
                reporter.report_row({**ROW, "step": step}, 4)
                wait_for(lambda: reporter._failures + len(warnings(caplog)) >= step, 5)  # each sent, not replaced
            reporter.close()
    assert len(server.posts) == (4 if listening else 0)
    (warning,) = warnings(caplog)
    assert "progress report" in warning.getMessage()
    assert ("HTTP 500" in caplog.text) == listening
    assert TOKEN not in caplog.text


def test_a_missing_token_file_is_a_warning_not_an_error(tmp_path, caplog):
    with ProgressServer() as server, caplog.at_level(logging.WARNING):
        reporter = Reporter(server.url, str(tmp_path / "absent"), every_s=0)
        reporter.report_row({**ROW, "step": 1}, 1)
        reporter.close()
    assert server.posts == [] and caplog.text.count("progress report") == 1


def test_close_waits_at_most_the_timeout_for_a_hung_server(tmp_path):
    hang = threading.Event()
    with ProgressServer(on_post=lambda n: hang.wait(10)) as server:
        reporter = Reporter(server.url, None, every_s=0, timeout_s=0.3)
        reporter.report_row({**ROW, "step": 1}, 1)
        t0 = time.monotonic()
        reporter.close()
        assert time.monotonic() - t0 < 2
        hang.set()


def test_reporter_from_the_environment(tmp_path):
    assert Reporter.from_env({}) is None
    env = {ENV_PROGRESS_URL: "http://api/x", ENV_PROGRESS_TOKEN_FILE: "/t", ENV_PROGRESS_EVERY_S: "0.5"}
    reporter = Reporter.from_env(env)
    assert reporter is not None and (reporter.url, reporter.token_file, reporter.every_s) == ("http://api/x", "/t", 0.5)
    reporter.close()


def test_report_figures_from_a_metrics_row():
    p = training_progress({**ROW, "step": 3, "loss": math.nan, "tokens_per_s": 10.0, "eta_s": 4.0}, 6, 2, utc_now())
    assert (p.step, p.total_steps, p.epoch, p.loss, p.tokens_per_second, p.eta_seconds) == (3, 6, 1.5, None, 10.0, 4.0)
    TrainingProgress.model_validate(p.wire())  # what the control plane accepts


def test_progress_feeds_the_reporter_every_row_and_closes_it(tmp_path):
    with ProgressServer() as server:
        reporter = Reporter(server.url, str(token_file(tmp_path)), every_s=0)
        p = Progress(tmp_path, total_steps=2, start_step=0, steps_per_epoch=1, reporter=reporter)
        for step in (1, 2):
            p.step({**ROW, "step": step})
            wait_for(lambda: len(server.posts) == step)
        p.close()
    rows = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert server.steps() == [1, 2]
    assert [b["loss"] for _, _, b in server.posts] == [r["loss"] for r in rows]
    assert server.posts[-1][2]["epoch"] == 2.0 and server.posts[-1][2]["etaSeconds"] == 0.0
