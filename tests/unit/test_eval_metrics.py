"""Metrics on hand-computed cases: pass@k, maj@k, per-setting summaries, and s1's
Control / Scaling / Performance; plus the budget grid the curves are built from."""

from __future__ import annotations

import math
from math import comb

import pytest

from thinkube.workloads.evaluation.metrics import (
    CurvePoint,
    control,
    curve_metrics,
    ks_up_to,
    majority_correct,
    pass_at_k,
    performance,
    scaling,
    summarize,
)
from thinkube.workloads.evaluation.settings import (
    FAMILY_ALL,
    FAMILY_COMBINED,
    FAMILY_IGNORE,
    FAMILY_MAX,
    BudgetSetting,
    budget_grid,
)


def rec(item, sample, correct, extracted="x", tokens=10):
    return {"item_id": item, "sample": sample, "correct": correct, "extracted": extracted, "thinking_tokens": tokens}


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (5, 2, 1, 0.4),
        (5, 2, 2, 0.7),
        (5, 0, 3, 0.0),
        (5, 3, 3, 1.0),
        (4, 1, 4, 1.0),
        (10, 3, 5, 1 - comb(7, 5) / comb(10, 5)),
    ],
)
def test_pass_at_k_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(2, 1, 3)


def test_ks():
    assert ks_up_to(1) == [1] and ks_up_to(4) == [1, 2, 4] and ks_up_to(6) == [1, 2, 4, 6]


def test_majority_vote_groups_correct_answers_and_ignores_unextracted():
    wrong3, half, point5, none = (
        rec("q", 0, False, "3"),
        rec("q", 1, True, "1/2"),
        rec("q", 2, True, "0.5"),
        rec("q", 3, False, None),
    )
    # "1/2" and "0.5" are both correct and vote together: 2 against 1 (by string it would be 1-1-1, "3" first).
    assert majority_correct([wrong3, half, point5]) is True
    assert majority_correct([wrong3, half, wrong3]) is False
    assert majority_correct([wrong3, half]) is False and majority_correct([half, wrong3]) is True  # ties: first seen
    assert majority_correct([none, none, half]) is True  # unextracted samples abstain
    assert majority_correct([none]) is False  # nobody voted: wrong, never a default
    assert (
        majority_correct(
            [rec("q", 0, False, r"\frac{1}{3}"), rec("q", 1, False, r"\dfrac13"), rec("q", 2, True, "0.5")]
        )
        is False
    )  # wrong answers vote by normalised form


def test_summarize_hand_computed():
    # item a: 2 of 2 correct; item b: 1 of 2 (first sample wrong); tokens 10, 20, 30, 200
    records = [
        rec("a", 0, True, "1", 10),
        rec("a", 1, True, "1", 20),
        rec("b", 0, False, "7", 30),
        rec("b", 1, True, "2", 200),
    ]
    s = summarize(records, bounds=(0, 100))
    assert s["items"] == 2 and s["samples"] == 4 and s["n"] == 2
    assert s["accuracy"] == 75.0  # (1.0 + 0.5) / 2
    assert s["pass_at"] == {1: 75.0, 2: 100.0}
    assert s["maj_at"] == {1: 50.0, 2: 50.0}  # b: a 1-1 tie goes to the first answer seen ("7", wrong)
    assert s["thinking_tokens"] == {"mean": 65.0, "median": 25.0, "min": 10, "max": 200}
    assert s["within_budget"] == 75.0 and s["unextracted"] == 0.0


def test_summarize_without_token_counts_and_with_judge():
    records = [
        rec("a", 0, True, "1", None),
        {**rec("b", 0, False, None, None), "judge": True},
        {**rec("a", 1, True, "1", None), "judge": True},
    ]
    s = summarize(records)
    assert s["thinking_tokens"] is None and s["within_budget"] is None
    assert s["judge"] == {"judged": 2, "accuracy": 100.0, "agreement": 50.0}
    assert "pass_at" not in s  # item b has one sample: n = 1


def test_scaling_is_the_mean_pairwise_slope():
    pts = [CurvePoint("a", 100, 20.0, True), CurvePoint("b", 200, 30.0, True), CurvePoint("c", 400, 50.0, True)]
    assert scaling(pts) == pytest.approx(0.1)  # every pair: +0.1 points per token
    pts = [CurvePoint("a", 100, 10.0, True), CurvePoint("b", 300, 50.0, True), CurvePoint("c", 500, 30.0, False)]
    # slopes: (50-10)/200 = 0.2, (30-10)/400 = 0.05, (30-50)/200 = -0.1 -> mean 0.05
    assert scaling(pts) == pytest.approx(0.05)
    assert control(pts) == pytest.approx(200 / 3)
    assert performance(pts) == 50.0
    # Pairs with equal thinking have no slope; one point has no pair.
    assert scaling([CurvePoint("a", 100, 10.0, True), CurvePoint("b", 100, 90.0, True)]) is None
    assert scaling(pts[:1]) is None


def test_curve_metrics_orders_by_tokens():
    out = curve_metrics([CurvePoint("big", 900, 60.0, True), CurvePoint("small", 90, 40.0, True)])
    assert out == {
        "settings": ["small", "big"],
        "control": 100.0,
        "scaling": pytest.approx(20 / 810),
        "performance": 60.0,
    }


def test_budget_grid_and_families():
    grid = budget_grid([256, 64, 64], [0, 2, 1], combine=True)
    assert [s.key for s in grid] == [
        "none",
        "max64",
        "max256",
        "ignore1",
        "ignore2",
        "max64-ignore1",
        "max64-ignore2",
        "max256-ignore1",
        "max256-ignore2",
    ]
    assert grid[0].families == (FAMILY_MAX, FAMILY_IGNORE, FAMILY_ALL)
    assert grid[1].families == (FAMILY_MAX, FAMILY_ALL) and grid[3].families == (FAMILY_IGNORE, FAMILY_ALL)
    assert grid[5].families == (FAMILY_COMBINED, FAMILY_ALL)
    assert [s.key for s in budget_grid([64], [1])] == ["none", "max64", "ignore1"]


def test_setting_bounds_and_request_fields():
    s = BudgetSetting(max_thinking_tokens=512, num_ignore=2, min_thinking_tokens=64, ignore_string="Hmm")
    assert s.bounds == (64.0, 512.0) and s.key == "max512-min64-ignore2"
    assert s.request_fields() == {
        "max_thinking_tokens": 512,
        "min_thinking_tokens": 64,
        "num_ignore": 2,
        "ignore_string": "Hmm",
    }
    assert BudgetSetting().bounds == (0.0, math.inf) and BudgetSetting().request_fields() == {}
    with pytest.raises(ValueError, match="num_ignore must be >= 0"):
        BudgetSetting(num_ignore=-1)
