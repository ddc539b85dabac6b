"""How a run's figures read to people, the same in `thinkube runs|results` and on the dashboard:
ages, numbers, training progress, summaries as dotted keys and an EvalSweep's accuracy tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 3m, 5h, 2d."""
    if not timestamp:
        return "<unknown>"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    for limit, unit, size in ((120, "s", 1), (120 * 60, "m", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def percent(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else ""


def step(progress: Any) -> str:
    """An SFTRun's `status.progress` as "12/300"; blank before the trainer's first report."""
    if not isinstance(progress, dict) or progress.get("step") is None:
        return ""
    total = progress.get("totalSteps")
    return f"{progress['step']}/{total}" if total else str(progress["step"])


def flatten(summary: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested summary figures as dotted keys: {"aime": {"accuracy": 0.5}} -> aime.accuracy 0.5."""
    out: list[tuple[str, str]] = []
    for key, value in summary.items():
        if isinstance(value, Mapping) and value:
            out.extend(flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", number(value)))
    return out


SETTING_COLUMNS = ("SETTING", "SAMPLES", "ACCURACY %", "THINKING MEAN", "WITHIN BUDGET %", "UNEXTRACTED %")
CURVE_COLUMNS = ("CURVE", "SETTINGS", "CONTROL %", "SCALING (POINTS PER 1K THINKING TOKENS)", "PERFORMANCE %")


def evaluation_tables(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An EvalSweep's results.json, one table per benchmark: each setting's accuracy and thinking
    (rows in SETTING_COLUMNS order), then each curve's Control/Scaling/Performance (s1's measures)."""
    from thinkube.workloads.evaluation.report import CURVES

    tables = []
    for bench, data in (results.get("benchmarks") or {}).items():
        settings = data.get("settings") or {}
        rows = [
            [
                key,
                number(s.get("samples")),
                percent(s.get("accuracy")),
                percent((s.get("thinking_tokens") or {}).get("mean")),
                percent(s.get("within_budget")),
                percent(s.get("unextracted")),
            ]
            for key, s in settings.items()
        ]
        curves = [
            [
                CURVES.get(family, family),
                ", ".join(c.get("settings") or []),
                percent(c.get("control")),
                # Per 1,000 thinking tokens, as results.md shows it: per token is a tiny number.
                f"{1000 * c['scaling']:.2f}" if isinstance(c.get("scaling"), (int, float)) else "",
                percent(c.get("performance")),
            ]
            for family, c in (data.get("curves") or {}).items()
        ]
        first: Mapping[str, Any] = next(iter(settings.values()), {})
        tables.append(
            {"benchmark": bench, "items": first.get("items"), "n": first.get("n"), "rows": rows, "curves": curves}
        )
    return tables
