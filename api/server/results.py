"""What a run left behind, read from its output folder: a summary per kind and the files
worth showing (reports, tables, plots), never model weights or checkpoints.

Results travel through the artifacts PVC, mounted read-only into the control plane: the
workloads already write their reports there, so nothing is copied, nothing is lost when a
pod is gone, and a results endpoint on the workloads (which have finished) is not needed.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from thinkube.api.server.problems import Problem

SHOWN_SUFFIXES = {".json", ".jsonl", ".md", ".png", ".csv", ".txt"}
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_SUMMARY_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 2  # reports sit at the top; per-benchmark ones one folder down
SKIPPED_DIRS = {"checkpoints", "final_model", "model", ".cache"}
LOSS_PNG = "loss_curve.png"  # drawn from metrics.jsonl on request


def files(folder: Path) -> list[Path]:
    """The files worth showing, relative to `folder`, in a stable order."""
    out: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        for p in sorted(d.iterdir()):
            if p.is_symlink():
                continue  # a link could point outside the run's folder
            if p.is_dir() and depth < MAX_DEPTH and p.name not in SKIPPED_DIRS and not p.name.startswith("."):
                walk(p, depth + 1)
            elif p.is_file() and p.suffix in SHOWN_SUFFIXES and p.stat().st_size <= MAX_FILE_BYTES:
                out.append(p.relative_to(folder))

    if folder.is_dir():
        walk(folder, 0)
    return out


def media_type(name: str) -> str:
    if name.endswith(".jsonl"):
        return "application/jsonl"
    if name.endswith(".md"):
        return "text/markdown; charset=utf-8"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def resolve(folder: Path, name: str) -> Path:
    """`name` inside `folder`, refusing anything outside it or not shown by `files`."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()) or Path(name).suffix not in SHOWN_SUFFIXES:
        raise Problem(404, "not-found", f"no result file {name!r}", "file")
    if not target.is_file() or target.relative_to(folder.resolve()) not in set(files(folder)):
        raise Problem(404, "not-found", f"no result file {name!r}", "file")
    return target


def _json(path: Path) -> dict | list | None:
    if not path.is_file() or path.stat().st_size > MAX_SUMMARY_BYTES:
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError):
        return None


def metrics(folder: Path) -> list[dict]:
    from thinkube.workloads.training.progress import METRICS_FILE, read_metrics

    return read_metrics(folder / METRICS_FILE)


def index(kind: str, folder: Path) -> tuple[dict, list[tuple[str, int | None]]]:
    """The summary and the files worth showing with their sizes (None: drawn on request), read in
    one pass: an SFTRun's metrics.jsonl, which can be long, once for both."""
    listed: list[tuple[str, int | None]] = [(str(p), (folder / p).stat().st_size) for p in files(folder)]
    if kind != "SFTRun":
        return report_summary(kind, folder), listed
    rows = metrics(folder)
    if rows:
        listed.append((LOSS_PNG, None))
    return training_summary(rows), listed


def training_summary(rows: list[dict]) -> dict:
    """An SFTRun's first figures, from its metrics.jsonl rows."""
    rows = [r for r in rows if isinstance(r.get("loss"), (int, float))]
    if not rows:
        return {}
    last = rows[-1]
    return {
        "steps": last.get("step"),
        "totalSteps": last.get("total_steps"),
        "firstLoss": rows[0]["loss"],
        "lastLoss": last["loss"],
        "tokensPerSecond": last.get("tokens_per_s"),
        "epoch": last.get("epoch"),
    }


def report_summary(kind: str, folder: Path) -> dict:
    """The report an EvalSweep or a CurationJob writes, as its summary."""
    if kind == "EvalSweep":
        from thinkube.workloads.evaluation.report import RESULTS_JSON

        data = _json(folder / RESULTS_JSON)
        return data if isinstance(data, dict) else {}
    if kind == "CurationJob":
        from thinkube.workloads.curation.report import REPORT_JSON

        data = _json(folder / REPORT_JSON)
        return data if isinstance(data, dict) else {}
    return {}


def loss_curve_png(folder: Path) -> bytes | None:
    """The training loss per step as a PNG, or None before the first step."""
    import io

    from thinkube.workloads.training.progress import plot_loss

    buf = io.BytesIO()
    return buf.getvalue() if plot_loss(metrics(folder), buf) else None
