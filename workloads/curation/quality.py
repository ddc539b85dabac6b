"""Quality filter: rows whose teacher call failed, then s1's formatting-artefact rules.

A failed distillation call (distill.py) is `teacher_failed`, its decision carrying the
call's error; a pool row that simply lacks a trace is `missing_thinking`/`missing_attempt`.

Each rule is named, can be switched off (`disable_rules`) and users add their own regexes
(`extra_rules`). A row is counted under the first rule it breaks, so the per-rule counts
add up to the rows dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from thinkube.api.stages.curate import CurateConfig
from thinkube.workloads.curation.distill import DISTILL
from thinkube.workloads.curation.rows import StageResult, decide, prov, source_label
from thinkube.workloads.formats import S1Record

Rule = Callable[[S1Record], bool]  # True: drop

_IMAGE = re.compile(r"!\[Image\]", re.IGNORECASE)
_NUMBERING = re.compile(r"\bp[1-9]\d{0,2}\.")  # p1. .. p999.
_BOLD_DIGITS = re.compile(r"\*\*(?=.*\d)[^\s\]]*\*\*")  # s1's rule, verbatim


def _missing(text: str | None) -> bool:
    return text is None or not text.strip()


def build_rules(cfg: CurateConfig) -> dict[str, Rule]:
    asy_ok = re.compile(cfg.asy_allowed_sources)
    rules: dict[str, Rule] = {
        "teacher_failed": lambda r: "error" in prov(r).get(DISTILL, {}),
        "missing_thinking": lambda r: _missing(r.thinking),
        "missing_attempt": lambda r: _missing(r.attempt),
        "asy": lambda r: "[asy]" in r.question and not asy_ok.search(source_label(r)),
        "image": lambda r: _IMAGE.search(r.question) is not None,
        "numbering": lambda r: _NUMBERING.search(r.question) is not None,
        "bold_digits": lambda r: _BOLD_DIGITS.search(r.question) is not None,
    }
    unknown = sorted(set(cfg.disable_rules) - set(rules))
    if unknown:
        raise ValueError(f"disable_rules {unknown}: no such rule; rules: {', '.join(rules)}")
    for name in cfg.disable_rules:
        del rules[name]
    for name, pattern in cfg.extra_rules.items():
        if name in rules:
            raise ValueError(f"extra_rules name {name!r} clashes with a built-in rule; pick another name")
        rules[name] = _pattern_rule(pattern)
    return rules


def _pattern_rule(pattern: str) -> Rule:
    rx = re.compile(pattern)
    return lambda r: rx.search(r.question) is not None


def quality_filter(records: list[S1Record], rules: dict[str, Rule]) -> StageResult:
    result = StageResult([], info={"rules": list(rules)})
    for r in records:
        broken = next((name for name, rule in rules.items() if rule(r)), None)
        if broken is None:
            result.kept.append(r)
        else:
            decision = {"rule": broken}
            if broken == "teacher_failed":
                decision["error"] = prov(r)[DISTILL]["error"]
            decide(r, "quality", decision)
            result.dropped.append((r, broken))
    return result
