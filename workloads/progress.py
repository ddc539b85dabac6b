"""Progress of a long batch of calls as log lines with rate and time left: what pods and CI
logs show (no terminal to draw a bar on)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

EVERY_S = 10.0


class RateLog:
    """Logs `what: done/total (rate/s, ~N s left)[, extra]` at most every EVERY_S seconds
    and once at the end; `extra` adds figures such as tokens spent."""

    def __init__(self, log: logging.Logger, what: str, total: int, extra: Callable[[], str] | None = None,
                 every_s: float = EVERY_S):
        self.log, self.what, self.total, self.extra, self.every_s = log, what, total, extra, every_s
        self.done, self.start = 0, time.monotonic()
        self.last = self.start

    def tick(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            tail = f", {self.extra()}" if self.extra else ""
            self.log.info("%s: %d/%d calls (%.1f/s, ~%.0f s left)%s", self.what, self.done, self.total, rate,
                          (self.total - self.done) / max(rate, 1e-9), tail)
