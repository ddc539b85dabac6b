"""Progress of a long batch of calls or samples: a tqdm bar on a terminal, else log lines
with the rate and the time left, which is what pods and CI logs can show."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

EVERY_S = 10.0


class Progress:
    """`what: done/total units (rate/s, ~N s left)[, figures]`, as a bar or as a log line at
    most every `every_s` seconds and once at the end. `done`: what an earlier run finished
    (resumed work), left out of the rate; `figures` adds running totals such as tokens
    spent; `bar`: None draws one only when stderr is a terminal. Use it as a context
    manager, so the bar is closed."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        *,
        done: int = 0,
        unit: str = "call",
        figures: Callable[[], str] | None = None,
        every_s: float = EVERY_S,
        bar: bool | None = None,
    ):
        self.log, self.what, self.total, self.unit, self.figures, self.every_s = (
            log,
            what,
            total,
            unit,
            figures,
            every_s,
        )
        self.done, self.resumed = done, done
        self.start = self.last = time.monotonic()
        self.bar = None
        if bar if bar is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit=unit, desc=what, dynamic_ncols=True)

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            if self.figures:
                self.bar.set_postfix_str(self.figures(), refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            rate = (self.done - self.resumed) / max(now - self.start, 1e-9)
            tail = f", {self.figures()}" if self.figures else ""
            self.log.info(
                "%s: %d/%d %ss (%.1f/s, ~%.0f s left)%s",
                self.what,
                self.done,
                self.total,
                self.unit,
                rate,
                (self.total - self.done) / max(rate, 1e-9),
                tail,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
