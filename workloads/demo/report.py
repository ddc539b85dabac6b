"""The demo's report: stage counts, the training loss, the accuracy table with s1's
Control/Scaling/Performance, and verdicts on the scaling curve and on extension taken from
the measured numbers (report.md, report.json, loss.png; the evaluation writes the scaling plot)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from thinkube.workloads.curation.report import stage_table
from thinkube.workloads.evaluation.report import RESULTS_MD
from thinkube.workloads.evaluation.settings import FAMILY_MAX, BudgetSetting
from thinkube.workloads.training.progress import plot_loss, read_metrics

NO_BUDGET = BudgetSetting().key  # the unconstrained baseline's setting key

REPORT_MD, REPORT_JSON, LOSS_PNG = "report.md", "report.json", "loss.png"


def train_summary(metrics_path: Path) -> dict:
    """Steps, mean loss of the first and last few steps (one step's loss is noisy at batch 16),
    and the summed step time; {} when the metrics hold no step."""
    rows = read_metrics(metrics_path)
    losses = [r["loss"] for r in rows if "loss" in r]
    if not losses:
        return {}
    window = max(1, min(25, len(losses) // 4))
    return {
        "metrics": str(metrics_path),
        "steps": len(losses),
        "first_loss": sum(losses[:window]) / window,
        "last_loss": sum(losses[-window:]) / window,
        "loss_window": window,
        "step_seconds": sum(r.get("step_seconds", 0.0) for r in rows),
    }


def scaling_verdict(bench: dict) -> dict:
    """Accuracy at the smallest and largest thinking maximum, and whether it rose."""
    curve = bench["curves"].get(FAMILY_MAX)
    maxima = [k for k in (curve["settings"] if curve else []) if k != NO_BUDGET]
    if len(maxima) < 2:
        return {"verdict": "no budget curve: sweep at least two --budgets values"}
    low, high = (bench["settings"][k] for k in (maxima[0], maxima[-1]))
    margin = high["accuracy"] - low["accuracy"]
    verdict = (
        f"accuracy rose by {margin:.1f} points from the smallest to the largest thinking budget"
        if margin > 0
        else f"accuracy did NOT rise with the thinking budget ({margin:+.1f} points): the model has not learned "
        f"to use its thinking; train longer (--epochs) or on more data (--select)"
    )
    return {
        "smallest": maxima[0],
        "largest": maxima[-1],
        "accuracy_smallest": low["accuracy"],
        "accuracy_largest": high["accuracy"],
        "margin_points": round(margin, 1),
        "rose": margin > 0,
        "verdict": verdict,
        "control": curve["control"],
        "scaling": curve["scaling"],
        "performance": curve["performance"],
    }


def _without_extension(key: str) -> str:
    """The setting key with the same budget and no "Wait" extension: max48-ignore2 -> max48, ignore1 -> none."""
    return "-".join(p for p in key.split("-") if not p.startswith("ignore")) or NO_BUDGET


def extension_verdict(bench: dict) -> dict | None:
    """What forcing "Wait" when the model ends its thinking did: each extended setting's
    accuracy against the same budget without extension (s1's central claim is that it
    rises). None when the sweep extended nothing it can be compared with."""
    settings = bench["settings"]
    pairs = {
        k: _without_extension(k)
        for k in settings
        if "ignore" in k and _without_extension(k) in settings and _without_extension(k) != k
    }
    if not pairs:
        return None
    acc = {k: settings[k]["accuracy"] for k in settings}
    margins = {k: round(acc[k] - acc[base], 1) for k, base in pairs.items()}
    parts = ", ".join(f"{k} {margins[k]:+.1f} points ({acc[base]:.1f}% -> {acc[k]:.1f}%)" for k, base in pairs.items())
    best = max(margins, key=margins.__getitem__)
    helped = all(m > 0 for m in margins.values())
    if helped:
        verdict = (
            f'extending thinking with "Wait" raised accuracy, by up to {margins[best]:.1f} points: {parts}, '
            f"each against the same budget without extension"
        )
    elif margins[best] > 0:
        verdict = (
            f'extending thinking with "Wait" helped only in part: {parts}, each against the same budget without '
            f"extension"
        )
    else:
        verdict = (
            f'extending thinking with "Wait" did NOT raise accuracy: {parts}, each against the same budget without '
            f"extension; the model does not use the extra thinking to check its answer"
        )
    return {
        "baselines": pairs,
        "baseline_accuracy": acc[NO_BUDGET] if NO_BUDGET in acc else None,
        "margins_points": margins,
        "best": best,
        "helped": helped,
        "verdict": verdict,
    }


def write(out: Path, results: dict) -> dict:
    """results: pipeline.run's per-stage info. Returns the report as a dict."""
    report: dict = {"stages": {k: v.get("seconds") for k, v in results.items()}}
    lines = [
        "# Thinkube demo",
        "",
        "The s1 pipeline on the built-in tiny model: curate -> SFT -> serve with "
        "budget forcing -> sweep thinking budgets. Every number below was measured in this run.",
        "",
    ]
    if "data" in results:
        d = results["data"]
        lines += [
            f"Pool: {d['pool_rows']} generated questions with reference answers and no traces (with planted "
            f"duplicates, benchmark copies, formatting artefacts and questions the teacher cannot read); "
            f"held-out benchmark: {d['benchmark_items']} questions.",
            "",
        ]
    if "curate" in results:
        cur = results["curate"]["report"]
        report["curation"] = {
            s["stage"]: {"in": s["in"], "kept": s["kept"], "dropped": s["dropped"]} for s in cur["stages"]
        }
        lines += [
            "## Curation",
            "",
            *stage_table(cur["stages"]),
            "",
            "Selected per domain: " + ", ".join(f"{k} {v}" for k, v in cur["per_domain"].items()),
            "",
        ]
    if "train" in results:
        t = results["train"]
        plot_loss(read_metrics(Path(t["metrics"])), out / LOSS_PNG, "SFT of the tiny model on the curated set")
        report["training"] = {"steps": t["steps"], "first_loss": t["first_loss"], "last_loss": t["last_loss"]}
        lines += [
            "## Training",
            "",
            f"{t['steps']} optimizer steps in {t['seconds']:.0f} s; mean loss of the first "
            f"and last {t['loss_window']} steps {t['first_loss']:.4g} -> {t['last_loss']:.4g} (plot: {LOSS_PNG}).",
            "",
        ]
    if "eval" in results:
        sweep = Path(results["eval"]["results"])
        ev = json.loads(sweep.read_text())
        bench = next(iter(ev["benchmarks"].values()))
        report["scaling"] = scaling_verdict(bench)
        report["extension"] = extension_verdict(bench)
        # The evaluation's tables without its title lines, one heading level down.
        table = re.sub(r"(?m)^## ", "### ", (sweep.parent / RESULTS_MD).read_text().split("\n", 4)[-1])
        lines += ["## Test-time scaling", "", table.strip(), "", f"**{report['scaling']['verdict']}.**", ""]
        if report["extension"]:
            lines += [f"**{report['extension']['verdict']}.**", ""]
        lines += [f"Plot: {results['eval']['plot']}", ""]
    (out / REPORT_MD).write_text("\n".join(lines))
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1))
    return report
