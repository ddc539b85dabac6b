"""Reports next to the records: results.json, results.md and accuracy_vs_thinking.png.

Everything is computed from the record files alone, so a report can be rebuilt at any
time (also for a sweep still running or one that was stopped).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from thinkube.workloads.evaluation.metrics import CurvePoint, curve_metrics, summarize
from thinkube.workloads.evaluation.records import read_all
from thinkube.workloads.evaluation.settings import FAMILY_ALL, FAMILY_COMBINED, FAMILY_IGNORE, FAMILY_MAX, BudgetSetting
from thinkube.workloads.evaluation.sweep import META_FILE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
PLOT_PNG = "accuracy_vs_thinking.png"
UNITS = {
    "accuracy": "percent; pass@1 averaged over the n samples of each item",
    "pass_at / maj_at": "percent, keyed by k",
    "thinking_tokens": "tokens as reported by the target (usage.completion_tokens_details.reasoning_tokens)",
    "within_budget": "percent of samples whose thinking tokens lie in [a_min, a_max]",
    "control": "percent of a curve's settings whose every sample stays within [a_min, a_max]",
    "scaling": "accuracy percentage points per thinking token: mean over pairs a<b of (f(b)-f(a))/(b-a)",
    "performance": "percent: best accuracy on the curve",
}
CURVES = {
    FAMILY_MAX: "budget forcing (max thinking tokens)",
    FAMILY_IGNORE: "extension (num_ignore)",
    FAMILY_COMBINED: "max tokens + extension",
    FAMILY_ALL: "all settings",
}


def _setting(record: dict) -> BudgetSetting:
    b = record.get("budget") or {}
    return BudgetSetting(
        b.get("max_thinking_tokens"),
        b.get("num_ignore", 0),
        b.get("min_thinking_tokens"),
        b.get("ignore_string"),
        b.get("final_answer_prefix"),
    )


def _order(setting: BudgetSetting) -> tuple:
    return (
        setting.max_thinking_tokens if setting.max_thinking_tokens is not None else math.inf,
        setting.num_ignore,
        setting.min_thinking_tokens or 0,
    )


def build_results(out: Path) -> dict:
    """Per benchmark: each setting's summary and each curve's Control/Scaling/Performance."""
    meta_path = out / META_FILE
    results: dict = {
        "units": UNITS,
        "sweep": json.loads(meta_path.read_text()) if meta_path.exists() else None,
        "benchmarks": {},
    }
    for bench, per_setting in read_all(out).items():
        settings = dict(
            sorted(((key, _setting(recs[0])) for key, recs in per_setting.items()), key=lambda kv: _order(kv[1]))
        )
        summaries = {key: summarize(per_setting[key], s.bounds) for key, s in settings.items()}
        curves = {}
        for family in CURVES:
            members = [key for key, s in settings.items() if family in s.families]
            # A curve needs a point of its own; the baseline alone is not a method.
            if all(settings[k].key == "none" for k in members) or any(
                summaries[k]["thinking_tokens"] is None for k in members
            ):
                continue
            curves[family] = curve_metrics(
                [
                    CurvePoint(
                        k,
                        summaries[k]["thinking_tokens"]["mean"],
                        summaries[k]["accuracy"],
                        summaries[k]["within_budget"] == 100.0,
                    )
                    for k in members
                ]
            )
        results["benchmarks"][bench] = {"settings": summaries, "curves": curves}
    return results


def _fmt(x, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_markdown(results: dict) -> str:
    lines = [
        "# Evaluation results",
        "",
        "Accuracy in percent (pass@1 averaged over the n samples of each item). Thinking tokens as the "
        "target reports them. Control/Scaling/Performance as defined in s1 (see results.json `units`).",
        "",
    ]
    for bench, data in results["benchmarks"].items():
        first = next(iter(data["settings"].values()))
        lines += [
            f"## {bench} ({first['items']} items, n = {first['n']})",
            "",
            "| setting | samples | accuracy | maj@n | pass@n | thinking mean | median | max | within budget | unextracted |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, s in data["settings"].items():
            tok = s["thinking_tokens"] or {}
            maj = s.get("maj_at", {}).get(s["n"])
            pas = s.get("pass_at", {}).get(s["n"])
            lines.append(
                f"| {key} | {s['samples']} | {_fmt(s['accuracy'])} | {_fmt(maj)} | {_fmt(pas)} | "
                f"{_fmt(tok.get('mean'))} | {_fmt(tok.get('median'))} | {_fmt(tok.get('max'))} | "
                f"{_fmt(s['within_budget'])} | {_fmt(s['unextracted'])} |"
            )
        if any("judge" in s for s in data["settings"].values()):
            lines += ["", "| setting | judged | judge accuracy | agreement with offline grader |", "|---|---|---|---|"]
            lines += [
                f"| {key} | {s['judge']['judged']} | {_fmt(s['judge']['accuracy'])} | {_fmt(s['judge']['agreement'])} |"
                for key, s in data["settings"].items()
                if "judge" in s
            ]
        if data["curves"]:
            lines += [
                "",
                "| curve | settings | Control (%) | Scaling (pp per 1k thinking tokens) | Performance (%) |",
                "|---|---|---|---|---|",
            ]
            for family, c in data["curves"].items():
                per_k = None if c["scaling"] is None else 1000 * c["scaling"]
                lines.append(
                    f"| {CURVES[family]} | {', '.join(c['settings'])} | {_fmt(c['control'])} | "
                    f"{_fmt(per_k, 2)} | {_fmt(c['performance'])} |"
                )
        lines.append("")
    return "\n".join(lines)


def point_labels(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """One label per plotted position: settings whose points coincide (the no-budget baseline
    on several curves, equal results) share it, "a, b", instead of printing over each other."""
    at: dict[tuple[float, float], list[str]] = {}
    for key, x, y in points:
        names = at.setdefault((round(x, 6), round(y, 6)), [])
        if key not in names:
            names.append(key)
    return [(", ".join(names), x, y) for (x, y), names in at.items()]


LABEL_GAP = 3.0  # points between a marker and its label


def place_labels(ax: Axes, labels: list[tuple[str, float, float]], fontsize: float = 7) -> list[Annotation]:
    """Annotates each label's point, up and to the right (to the left where the label would
    leave the axes), moving it up or down by its own height until it overlaps no label
    placed before it: points close together on the log axis would otherwise print their
    names over each other. Call once the axes' limits and layout are final, since the boxes
    are measured in display space."""
    placed: list[Annotation] = []
    boxes: list[Bbox] = []
    right_edge = ax.get_window_extent().x1
    for text, x, y in sorted(labels, key=lambda label: (label[1], label[2])):
        note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(LABEL_GAP, LABEL_GAP), fontsize=fontsize)
        box = note.get_window_extent()
        dx = LABEL_GAP
        if box.x1 > right_edge:
            note.set_horizontalalignment("right")
            dx = -LABEL_GAP
        step = box.height * 72 / ax.figure.dpi + 1  # the label's height in points, and a gap
        for shift in (0, *(sign * n * step for n in range(1, 2 * len(labels) + 1) for sign in (1, -1))):
            note.xyann = (dx, LABEL_GAP + shift)
            box = note.get_window_extent()
            if not any(box.overlaps(other) for other in boxes):
                break
        placed.append(note)
        boxes.append(box)
    return placed


def plot(results: dict, path: Path) -> bool:
    """Accuracy vs mean thinking tokens, one panel per benchmark, one line per method; False if nothing to plot."""
    panels = [
        (b, d)
        for b, d in results["benchmarks"].items()
        if any(c in d["curves"] for c in (FAMILY_MAX, FAMILY_IGNORE, FAMILY_COMBINED))
    ]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: no display in pods or CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    labels: dict = {}  # per panel, placed once the layout is final
    for ax, (bench, data) in zip(axes[0], panels):
        points: list[tuple[str, float, float]] = []
        for family, style in ((FAMILY_MAX, "o-"), (FAMILY_IGNORE, "s--"), (FAMILY_COMBINED, "^:")):
            curve = data["curves"].get(family)
            if not curve:
                continue
            pts = [data["settings"][k] for k in curve["settings"]]
            xs = [p["thinking_tokens"]["mean"] for p in pts]
            ys = [p["accuracy"] for p in pts]
            ax.plot(xs, ys, style, label=CURVES[family])
            points += zip(curve["settings"], xs, ys)
        if all(p["thinking_tokens"]["mean"] > 0 for p in data["settings"].values() if p["thinking_tokens"]):
            ax.set_xscale("log", base=2)  # budgets double from setting to setting, as in s1's figures
        ax.set_title(bench)
        ax.set_xlabel("mean thinking tokens")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        labels[ax] = point_labels(points)
    fig.tight_layout()
    for ax, panel_labels in labels.items():
        place_labels(ax, panel_labels)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_reports(out: Path) -> dict:
    """Write results.json, results.md and (when token counts exist) the plot; returns the results."""
    results = build_results(out)
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=2))
    (out / RESULTS_MD).write_text(render_markdown(results))
    plot(results, out / PLOT_PNG)
    return results
