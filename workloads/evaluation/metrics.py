"""Metrics of a sweep. Units: accuracies in percent; thinking tokens as the server counts them.

Per (benchmark, setting):
- accuracy: pass@1 averaged over the n samples of each item, then over items;
- pass@k (Chen et al. 2021 unbiased estimator) and maj@k (majority vote over the first k
  samples) for k = 1, 2, 4, ... up to n, when n > 1;
- thinking tokens: mean, median, min, max, and the share of samples within the setting's
  [a_min, a_max].
Across the settings of one curve (S1.md section 3), with a = a setting's mean thinking
tokens and f(a) = its accuracy:
- Control = percent of settings whose every sample stays within [a_min, a_max]; a_min is
  the requested min_thinking_tokens (0 if none), a_max the requested max_thinking_tokens
  (unbounded if none). Per sample rather than on the mean, because a budget that only
  holds on average is exactly the reference code's defect.
- Scaling = mean over all pairs a < b of (f(b) - f(a)) / (b - a): the average slope, in
  accuracy percentage points per thinking token, exactly as the formula reads
  (results.md also prints it per 1,000 tokens for readability).
- Performance = max f(a), percent.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from thinkube.workloads.grading.grade import normalize_math


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k), as a product for stability."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def ks_up_to(n: int) -> list[int]:
    """1, 2, 4, ... below n, then n."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def majority_correct(samples: Sequence[dict]) -> bool:
    """Is the most common answer among `samples` correct?

    Correct samples vote together (each is equivalent to the reference, so to each other;
    their strings may differ: "1/2", "0.5"); wrong ones vote by normalised answer;
    unextracted ones abstain. Ties go to the answer seen first.
    """
    votes = Counter(
        "\0correct" if s["correct"] else normalize_math(s["extracted"])
        for s in samples
        if s.get("extracted") is not None
    )
    return bool(votes) and votes.most_common(1)[0][0] == "\0correct"


def _by_item(records: Sequence[dict]) -> dict[str, list[dict]]:
    items: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["item_id"], r["sample"])):
        items.setdefault(r["item_id"], []).append(r)
    return items


def _pct(x: float) -> float:
    return round(100.0 * x, 4)


def summarize(records: Sequence[dict], bounds: tuple[float, float] = (0.0, math.inf)) -> dict:
    """Metrics of one (benchmark, setting) from its records; `bounds` = (a_min, a_max)."""
    items = _by_item(records)
    if not items:
        raise ValueError("no records to summarise")
    n = min(len(s) for s in items.values())  # an unfinished sweep can leave items with fewer samples
    out: dict = {
        "items": len(items),
        "samples": len(records),
        "n": n,
        "accuracy": _pct(statistics.fmean(statistics.fmean(r["correct"] for r in s) for s in items.values())),
        "unextracted": _pct(statistics.fmean(r["extracted"] is None for r in records)),
        "grader_timeouts": sum(r.get("method") == "math-verify-timeout" for r in records),
    }
    if n > 1:
        ks = ks_up_to(n)
        out["pass_at"] = {
            k: _pct(statistics.fmean(pass_at_k(len(s), sum(r["correct"] for r in s), k) for s in items.values()))
            for k in ks
        }
        out["maj_at"] = {k: _pct(statistics.fmean(majority_correct(s[:k]) for s in items.values())) for k in ks}
    tokens = [r["thinking_tokens"] for r in records if r.get("thinking_tokens") is not None]
    if len(tokens) == len(records):
        low, high = bounds
        out["thinking_tokens"] = {
            "mean": round(statistics.fmean(tokens), 2),
            "median": statistics.median(tokens),
            "min": min(tokens),
            "max": max(tokens),
        }
        out["within_budget"] = _pct(statistics.fmean(low <= t <= high for t in tokens))
    else:
        out["thinking_tokens"] = None  # the endpoint did not report reasoning tokens for every sample
        out["within_budget"] = None
    judged = [r for r in records if r.get("judge") is not None]
    if judged:
        out["judge"] = {
            "judged": len(judged),
            "accuracy": _pct(statistics.fmean(r["judge"] for r in judged)),
            "agreement": _pct(statistics.fmean(r["judge"] == r["correct"] for r in judged)),
        }
    return out


@dataclass(frozen=True)
class CurvePoint:
    setting: str
    tokens: float  # a: mean thinking tokens
    accuracy: float  # f(a), percent
    in_control: bool  # every sample within [a_min, a_max]


def control(points: Sequence[CurvePoint]) -> float:
    return _pct(statistics.fmean(p.in_control for p in points))


def scaling(points: Sequence[CurvePoint]) -> float | None:
    """Mean slope over pairs a < b, percentage points per thinking token; None without such a pair."""
    slopes = [
        (hi.accuracy - lo.accuracy) / (hi.tokens - lo.tokens)
        for lo, hi in (sorted(pair, key=lambda p: p.tokens) for pair in combinations(points, 2))
        if hi.tokens > lo.tokens
    ]
    return statistics.fmean(slopes) if slopes else None


def performance(points: Sequence[CurvePoint]) -> float:
    return max(p.accuracy for p in points)


def curve_metrics(points: Sequence[CurvePoint]) -> dict:
    """Control, Scaling and Performance of one curve (one method's settings)."""
    points = sorted(points, key=lambda p: p.tokens)
    return {
        "settings": [p.setting for p in points],
        "control": control(points),
        "scaling": scaling(points),
        "performance": performance(points),
    }
