"""Offline grading: the hard-case table in tests/data/eval/grader_cases.jsonl, extraction
details, and the time limit that lets math-verify run in worker threads and processes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from thinkube.workloads.grading.extract import extract_answer, extract_choice, last_boxed
from thinkube.workloads.grading.grade import grade, grade_many, parse_integer
from thinkube.workloads.grading.timelimit import TimeLimitExceeded, run_with_time_limit

CASES_FILE = Path(__file__).resolve().parents[1] / "data" / "eval" / "grader_cases.jsonl"
CASES = [json.loads(line) for line in CASES_FILE.read_text().splitlines() if line.strip()]


def _param(case: dict):
    marks = [pytest.mark.xfail(reason=case["known_limitation"], strict=True)] if case.get("known_limitation") else []
    return pytest.param(case, id=f"{case['kind']}-{case['note'][:50]}", marks=marks)


def test_case_table_is_large_and_covers_every_kind():
    assert len(CASES) >= 60
    assert {c["kind"] for c in CASES} == {"integer", "math", "choice"}
    assert sum(not c["correct"] for c in CASES) >= 20  # wrong answers must be caught too


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_grader_case(case):
    verdict = grade(case["kind"], case["gold"], case["text"])
    assert verdict.correct is case["correct"], verdict
    if "extracted" in case:
        assert verdict.extracted == case["extracted"], verdict
        assert verdict.unextracted is (case["extracted"] is None)


@pytest.mark.timeout(20)  # quadratic extraction took 37-55 s on this input
def test_a_looping_generation_of_open_boxes_grades_at_once():
    loop = "\\boxed{" * 12_000  # 84 KB, common in long-thinking generations that loop
    assert grade("integer", "5", loop).method == "unextracted"
    verdict = grade("integer", "5", loop + "\\boxed{5}")
    assert verdict.correct and verdict.extracted == "5"


def test_extraction_has_a_time_limit():
    # Far below what any extraction takes: the limit is what fires.
    assert grade("integer", "5", "\\boxed{5} " * 20_000, timeout_s=1e-6).method == "extraction-timeout"


def test_boxed_with_literal_braces_and_nesting():
    assert last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"
    assert last_boxed(r"\boxed{\frac{a}{\sqrt{b}}} and \boxed{x^{2}}") == "x^{2}"
    assert last_boxed("no box here") is None


def test_answer_after_marker_takes_inline_math_from_prose():
    assert extract_answer("Answer: the area is $12$ square units") == "12"
    assert extract_answer("Final Answer:\n\n  $x = 5$") == "x = 5"


def test_choice_never_defaults_to_a_letter():
    for text in ("", "   ", "I do not know", "None of these look right.", "a"):
        assert extract_choice(text) is None
    assert grade("choice", "A", "none").method == "unextracted"


def test_choice_respects_the_number_of_options():
    assert extract_choice("Answer: F", "ABCDEF") == "F"
    assert extract_choice("Answer: F", "ABCD") is None


@pytest.mark.parametrize(
    "text,value",
    [
        ("042", 42),
        ("1,000", 1000),
        (r"\$25", 25),
        (r"60^\circ", 60),
        (r"12\text{ cm}", 12),
        ("n = 7", 7),
        ("7.0", 7),
        ("7.5", None),
        (r"\frac{14}{2}", None),
        ("seven", None),
        ("-3", -3),
    ],
)
def test_parse_integer(text, value):
    assert parse_integer(text) == value


def test_integer_benchmark_with_non_integer_reference_says_which_kind_to_use():
    with pytest.raises(ValueError, match="kind 'math'"):
        grade("integer", r"\frac{1}{2}", r"\boxed{3}")


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="unknown answer kind 'essay'"):
        grade("essay", "x", r"\boxed{x}")


def _spin():
    while True:
        pass


def test_time_limit_interrupts_in_main_thread():
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        run_with_time_limit(_spin, 0.2)
    assert time.monotonic() - started < 2


def test_time_limit_interrupts_in_worker_thread_and_math_verify_works_there():
    outcome = {}

    def work():
        try:
            run_with_time_limit(_spin, 0.2)
        except TimeLimitExceeded:
            outcome["limited"] = True
        # math-verify with its signal timeouts would raise here ("signal only works in main thread").
        outcome["verdict"] = grade("math", r"\frac{1}{2}", r"\boxed{0.5}")

    t = threading.Thread(target=work)
    t.start()
    t.join(10)
    assert outcome == {"limited": True, "verdict": outcome["verdict"]} and outcome["verdict"].correct
    assert outcome["verdict"].method == "math-verify"


def test_time_limit_returns_result_and_leaves_no_pending_alarm():
    assert run_with_time_limit(lambda: 41 + 1, 0.05) == 42
    time.sleep(0.1)  # a stray alarm or injected exception would surface here


def test_grading_timeout_counts_wrong_not_crash(monkeypatch):
    import thinkube.workloads.grading.grade as g

    monkeypatch.setattr(g, "_verify", lambda gold, pred: _spin())
    verdict = g.grade("math", "2", r"\boxed{1+1.0000001}", timeout_s=0.2)
    assert (verdict.correct, verdict.method) == (False, "math-verify-timeout")


def test_grade_many_in_processes_matches_single_threaded():
    jobs = [(c["kind"], c["gold"], c["text"], 4) for c in CASES[:30]]
    assert grade_many(jobs, workers=2) == grade_many(jobs, workers=0)


def test_a_bare_box_before_a_dollar_sign_is_skipped_not_a_crash():
    # `\boxed $...$` has no token to take: the box is skipped, an earlier complete one stands.
    assert extract_answer("\\boxed{7} and then \\boxed $x$") == "7"
    assert extract_answer("\\boxed 5") == "5"
