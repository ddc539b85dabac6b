"""The progress helper: rate lines in logs, a bar on a terminal."""

from __future__ import annotations

import logging

from thinkube.workloads.progress import Progress

log = logging.getLogger("progress-test")


def test_without_a_terminal_it_logs_the_rate_and_figures_at_most_every_interval_and_at_the_end(caplog):
    caplog.set_level(logging.INFO, "progress-test")
    with Progress(log, "distill", 5, done=1, figures=lambda: "tokens in 12", every_s=3600, bar=False) as progress:
        for _ in range(4):
            progress.tick()
    [line] = caplog.messages  # the interval never passed: only the last tick logs
    assert line.startswith("distill: 5/5 calls (") and line.endswith("/s, ~0 s left), tokens in 12")


def test_on_a_terminal_it_draws_a_bar_instead(caplog, capsys):
    caplog.set_level(logging.INFO, "progress-test")
    with Progress(log, "sweep", 4, done=2, unit="sample", figures=lambda: "accuracy so far 50.0%", bar=True) as p:
        p.tick(2)
    err = capsys.readouterr().err
    assert "sweep: 100%" in err and "4/4" in err and "accuracy so far 50.0%" in err and not caplog.messages
