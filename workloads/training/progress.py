"""Per-step progress: metrics.jsonl in the output folder, what the progress helper shows, and
the reports to the control plane that become the SFTRun's status.progress (progress_report)."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

from thinkube.workloads import progress as shared
from thinkube.workloads.training.progress_report import Reporter

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: Path) -> list[dict]:
    """The step rows of a metrics.jsonl, [] when there is none; a line still being written
    (a run in progress) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def plot_loss(rows: list[dict], out, title: str | None = None) -> bool:
    """The training loss per step as a PNG written to `out` (a path or a binary file);
    False, writing nothing, before the first step."""
    curve = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float)) and "step" in r]
    if not curve:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot([s for s, _ in curve], [v for _, v in curve], lw=1)
    ax.set_yscale("log")  # the loss falls over orders of magnitude
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (per answer token)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=120)
    return True


class Progress:
    """Only rank 0 makes one: the loss it reports is already summed over all ranks. What it
    shows goes through the one progress helper (a bar on a terminal, else rate log lines)."""

    def __init__(
        self,
        output: Path,
        total_steps: int,
        start_step: int,
        *,
        steps_per_epoch: int | None = None,
        reporter: Reporter | None = None,
    ):
        self.path = output / METRICS_FILE
        self.total, self.start = total_steps, start_step
        self.steps_per_epoch, self.reporter = steps_per_epoch, reporter
        self.t0 = time.perf_counter()
        self._last: dict = {}
        self.shown = shared.Progress(log, "train", total_steps, done=start_step, unit="step", figures=self._figures)

    def _figures(self) -> str:
        r = self._last
        return (
            f"loss {r['loss']:.4f} lr {r['lr']:.3e} grad_norm {r['grad_norm']:.3f} tokens/s "
            f"{r['tokens_per_s']:.0f} eta {timedelta(seconds=round(r['eta_s']))}"
        )

    def step(self, row: dict) -> None:
        """row: step (1-based), loss, lr, grad_norm, tokens, step_seconds, epoch."""
        done = row["step"] - self.start
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - row["step"]) if done else 0.0
        row = {
            **row,
            "tokens_per_s": row["tokens"] / max(row["step_seconds"], 1e-9),
            "elapsed_s": elapsed,
            "eta_s": eta,
            "total_steps": self.total,
            "time": time.time(),
        }
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self._last = row
        self.shown.tick()
        if self.reporter:
            self.reporter.report_row(row, self.total, self.steps_per_epoch)

    def close(self) -> None:
        self.shown.close()
        if self.reporter:
            self.reporter.close()  # the last step's report goes out before the final save
