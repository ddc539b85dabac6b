"""Diversity selection: s1's auto-include, then its domain-uniform, long-trace-biased draw,
seeded (the reference notebook never seeded its generator, so its 1,000 cannot be redrawn).

The draw: pick a domain uniformly at random; inside it pick a question with probability
proportional to 2^-rank (rank 0 = longest trace, ties broken by row id); remove it; drop
empty domains; repeat to the target size. `random.Random(seed)` gives the same selection
for the same seed and inputs on every platform.
"""

from __future__ import annotations

import random
import re

from thinkube.api.stages.curate import AutoIncludeRule, CurateConfig
from thinkube.workloads.curation.rows import StageResult, decide, prov, source_label
from thinkube.workloads.formats import S1Record

TEACHER_GRADE_COLUMNS = ("grade", "deepseek_grade", "gemini_grade", "teacher_correct")
_YES = {"yes", "true", "1", "correct", "right"}
# 2^-1075 is 0.0 in float64: ranks past this have no chance, so weights stop here.
_MAX_RANK = 1075


class SelectionError(ValueError):
    """The remaining pool cannot give the target size; the message has the counts."""


def teacher_correct(record: S1Record, column: str | None) -> bool | None:
    """The teacher's grade when the pool has one (s1K: "Yes"/"No"), else None."""
    columns = [column] if column else TEACHER_GRADE_COLUMNS
    for c in columns:
        if c in record.extra and record.extra[c] is not None:
            value = record.extra[c]
            return value if isinstance(value, bool) else str(value).strip().lower() in _YES
    return None


def auto_included(record: S1Record, rules: list[AutoIncludeRule], grade_column: str | None) -> str | None:
    """The rule (its source pattern) that auto-includes the row, or None."""
    if teacher_correct(record, grade_column) is False:
        return None
    label, tokens = source_label(record), prov(record)["trace_tokens"] or 0
    for rule in rules:
        if re.search(rule.source, label) and (rule.min_trace_tokens is None or tokens > rule.min_trace_tokens):
            return rule.source
    return None


def _by_rank(records: list[S1Record]) -> list[S1Record]:
    return sorted(records, key=lambda r: (-(prov(r)["trace_tokens"] or 0), prov(r)["uid"]))


def select(records: list[S1Record], cfg: CurateConfig) -> StageResult:
    rng = random.Random(cfg.seed)
    chosen, rest = [], []
    for r in records:
        rule = auto_included(r, cfg.auto_include, cfg.teacher_grade_column)
        if rule is not None:
            decide(r, "select", {"how": "auto", "rule": rule})
            chosen.append(r)
        else:
            rest.append(r)
    auto = len(chosen)
    target = cfg.target_size
    if auto > target:
        raise SelectionError(
            f"auto-include keeps {auto} rows, more than target_size {target}: raise --target-size "
            f"or narrow the auto_include rules in --config"
        )
    if len(records) < target and not cfg.allow_smaller:
        raise SelectionError(
            f"target_size {target} is larger than the {len(records)} rows left after filtering "
            f"({auto} auto-included + {len(rest)} to draw from): lower --target-size, add pools, "
            f"or pass --allow-smaller to keep all {len(records)}"
        )
    domains: dict[str, list[S1Record]] = {}
    for r in rest:
        domains.setdefault(r.domain or "unknown", []).append(r)
    # Sorted domain names and ranked lists: the draw depends on the seed and the rows only.
    pools = {d: _by_rank(rows) for d, rows in sorted(domains.items())}
    weights = [2.0**-k for k in range(_MAX_RANK)]
    draw = 0
    while len(chosen) < target and pools:
        domain = rng.choice(list(pools))
        rows = pools[domain]
        k = rng.choices(range(min(len(rows), _MAX_RANK)), weights=weights[: len(rows)])[0]
        r = rows.pop(k)
        decide(r, "select", {"how": "draw", "order": draw, "rank": k})
        chosen.append(r)
        draw += 1
        if not rows:
            del pools[domain]
    picked = {id(r) for r in chosen}
    dropped = [(r, "not drawn") for r in rest if id(r) not in picked]
    return StageResult(chosen, dropped, info={"auto_included": auto, "drawn": draw, "seed": cfg.seed})
