"""report.json, report.md and domains.png: what each stage kept and dropped, per source
and per domain, so a curated set can be audited without reading the stage files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from thinkube.api.stages.curate import CurateConfig
from thinkube.workloads.curation.domains import domain_name
from thinkube.workloads.curation.rows import prov
from thinkube.workloads.formats import S1Record

REPORT_JSON, REPORT_MD, DOMAINS_PNG, TRACES_PNG = "report.json", "report.md", "domains.png", "traces.png"


def per_source(records: list[S1Record]) -> dict[str, int]:
    return dict(sorted(Counter(prov(r)["source"] for r in records).items()))


def per_domain(records: list[S1Record]) -> dict[str, int]:
    return dict(Counter(r.domain or "unknown" for r in records).most_common())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display in pods or CI
    import matplotlib.pyplot as plt

    return plt


def _plot(counts: dict[str, int], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(counts)), 4.5))
    ax.bar(range(len(counts)), list(counts.values()), color="#4C72B0")
    ax.set_xticks(range(len(counts)), [f"{code} {domain_name(code)[:20]}" for code in counts], rotation=90, fontsize=7)
    ax.set_xlabel("MSC domain")
    ax.set_ylabel("selected questions")
    ax.set_title(f"Domains of the {sum(counts.values())} selected questions ({len(counts)} domains)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_traces(histogram: dict[str, int], teacher: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(len(histogram)), list(histogram.values()), color="#55A868")
    ax.set_xticks(range(len(histogram)), list(histogram), rotation=45)
    ax.set_xlabel("teacher thinking tokens")
    ax.set_ylabel("traces")
    ax.set_title(f"Trace lengths from {teacher}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def distill_info(stages: list[dict]) -> dict | None:
    """The distill stage's figures, when a teacher ran (the stage is skipped without one)."""
    return next((s["info"] for s in stages if s["stage"] == "distill" and "teacher" in s["info"]), None)


def distill_lines(info: dict) -> list[str]:
    """Markdown: the teacher's calls, failures, tokens and trace lengths."""
    failures = ", ".join(f"{k}: {v}" for k, v in info["failures"].items()) or "none"
    grades = ", ".join(f"{k} {v}" for k, v in info["teacher_grades"].items()) or "-"
    return [
        f"Teacher {info['teacher']}: {info['asked']} rows asked, {info['calls_made']} calls made, "
        f"{info['cached']} from the cache, {info['failed']} failed ({failures}); tokens in {info['tokens_in']:,}, "
        f"out {info['tokens_out']:,}; rate-limit pauses {info['rate_limit_pauses']}. "
        f"Teacher's attempts graded against the references: {grades}.",
        "",
        "| thinking tokens | traces |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info["trace_tokens"].items()],
    ]


def stage_table(stages: list[dict]) -> list[str]:
    """Markdown rows: what each stage took in, kept and dropped (by reason), and its time."""
    lines = ["| stage | in | kept | dropped (by reason) | seconds |", "|---|---|---|---|---|"]
    for s in stages:
        reasons = ", ".join(f"{k}: {v}" for k, v in s["dropped"].items()) or "-"
        if s["info"].get("skipped"):
            reasons = f"skipped: {s['info']['skipped']}"
        lines.append(f"| {s['stage']} | {s['in']} | {s['kept']} | {reasons} | {s['seconds']} |")
    return lines


def _markdown(data: dict) -> str:
    lines = [
        "# Curation report",
        "",
        f"Selected **{data['selected']}** rows (target {data['target_size']}, "
        f"seed {data['seed']}); trace lengths counted with {data['trace_counter']}.",
        "",
        "## Stages",
        "",
        *stage_table(data["stages"]),
    ]
    stages = [s["stage"] for s in data["stages"]]
    distilled = distill_info(data["stages"])
    if distilled:
        lines += ["", "## Distillation", "", *distill_lines(distilled), "", f"Plot: {TRACES_PNG}"]
    lines += [
        "",
        "## Per source (rows kept after each stage)",
        "",
        "| source | " + " | ".join(stages) + " |",
        "|---" * (len(stages) + 1) + "|",
    ]
    for source in data["stages"][0]["kept_per_source"]:
        lines.append(
            f"| {source} | " + " | ".join(str(s["kept_per_source"].get(source, 0)) for s in data["stages"]) + " |"
        )
    lines += ["", "## Per domain (selected)", "", "| domain | name | selected |", "|---|---|---|"]
    lines += [f"| {d} | {domain_name(d)} | {n} |" for d, n in data["per_domain"].items()]
    return "\n".join(lines) + "\n"


def write_reports(out: Path, summaries: list[dict], selected: list[S1Record], cfg: CurateConfig) -> dict:
    domains = per_domain(selected)
    data = {
        "selected": len(selected),
        "target_size": cfg.target_size,
        "seed": cfg.seed,
        "trace_counter": cfg.tokenizer or "whitespace words (no --tokenizer)",
        "stages": [{k: v for k, v in s.items() if k != "fingerprint"} for s in summaries],
        "per_source": per_source(selected),
        "per_domain": domains,
    }
    (out / REPORT_JSON).write_text(json.dumps(data, indent=1))
    (out / REPORT_MD).write_text(_markdown(data))
    if selected:
        _plot(domains, out / DOMAINS_PNG)
    distilled = distill_info(summaries)
    if distilled and distilled["trace_tokens"]:
        _plot_traces(distilled["trace_tokens"], distilled["teacher"], out / TRACES_PNG)
    return data
