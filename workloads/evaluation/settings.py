"""Budget settings of a sweep: which budget-forcing fields go into each request.

A setting is one point of the test-time scaling curve. Families group the points that
form one curve (S1.md section 3): budget forcing by maximum thinking tokens, extension by
`num_ignore` ("Wait" k times), and both combined. The no-budget baseline belongs to the
first two curves: it is their unbounded end and their k = 0 start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

FAMILY_MAX = "max_thinking_tokens"
FAMILY_IGNORE = "num_ignore"
FAMILY_COMBINED = "combined"
FAMILY_ALL = "all"


@dataclass(frozen=True)
class BudgetSetting:
    max_thinking_tokens: int | None = None
    num_ignore: int = 0
    min_thinking_tokens: int | None = None
    # None: the server's defaults ("Wait", "Final Answer:").
    ignore_string: str | None = None
    final_answer_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.max_thinking_tokens is not None and self.max_thinking_tokens < 0:
            raise ValueError(f"max_thinking_tokens must be >= 0, got {self.max_thinking_tokens}")
        if self.num_ignore < 0:
            raise ValueError(f"num_ignore must be >= 0, got {self.num_ignore}")

    @property
    def key(self) -> str:
        """Stable name, also the record file name: none, max512, ignore2, max512-ignore2."""
        parts = []
        if self.max_thinking_tokens is not None:
            parts.append(f"max{self.max_thinking_tokens}")
        if self.min_thinking_tokens:
            parts.append(f"min{self.min_thinking_tokens}")
        if self.num_ignore:
            parts.append(f"ignore{self.num_ignore}")
        return "-".join(parts) or "none"

    @property
    def families(self) -> tuple[str, ...]:
        has_max, has_ignore = self.max_thinking_tokens is not None, bool(self.num_ignore)
        if has_max and has_ignore:
            return (FAMILY_COMBINED, FAMILY_ALL)
        if has_max:
            return (FAMILY_MAX, FAMILY_ALL)
        if has_ignore:
            return (FAMILY_IGNORE, FAMILY_ALL)
        return (FAMILY_MAX, FAMILY_IGNORE, FAMILY_ALL)

    @property
    def bounds(self) -> tuple[float, float]:
        """[a_min, a_max] for s1's Control: the requested minimum (0 if none) and maximum (inf if none)."""
        high = math.inf if self.max_thinking_tokens is None else float(self.max_thinking_tokens)
        return float(self.min_thinking_tokens or 0), high

    def request_fields(self) -> dict:
        """The extra body fields of `POST /v1/chat/completions` (only those set)."""
        fields = {
            "max_thinking_tokens": self.max_thinking_tokens,
            "min_thinking_tokens": self.min_thinking_tokens,
            "num_ignore": self.num_ignore or None,
            "ignore_string": self.ignore_string,
            "final_answer_prefix": self.final_answer_prefix,
        }
        return {k: v for k, v in fields.items() if v is not None}


def budget_grid(
    max_thinking_tokens: Iterable[int] = (),
    num_ignore: Iterable[int] = (),
    *,
    combine: bool = False,
    ignore_string: str | None = None,
    final_answer_prefix: str | None = None,
) -> list[BudgetSetting]:
    """The baseline, one setting per maximum, one per k > 0, and with `combine` every (maximum, k) pair."""
    maxima = sorted(set(max_thinking_tokens))
    ks = sorted(set(k for k in num_ignore if k))  # k = 0 is the baseline
    pairs = [(None, 0)] + [(m, 0) for m in maxima] + [(None, k) for k in ks]
    if combine:
        pairs += [(m, k) for m in maxima for k in ks]
    return [BudgetSetting(m, k, ignore_string=ignore_string, final_answer_prefix=final_answer_prefix) for m, k in pairs]
