"""Benchmark loading: the AIME, MATH-500 and GPQA column layouts, generic files, the
per-question GPQA shuffle, and errors that name the file and how to get it."""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path

import pytest

from thinkube.workloads.evaluation.benchmarks import KNOWN, BenchmarkError, load_benchmark

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def test_aime_layout():
    bench = load_benchmark("aime24", str(DATA / "aime_layout.jsonl"))
    first = bench.items[0]
    assert (first.id, first.question, first.answer, first.kind) == ("arith-0", "Compute 12 + 30.", "42", "integer")
    assert first.metadata["year"] == 2024 and "problem" not in first.metadata
    assert "\\boxed{}" in first.prompt and first.question in first.prompt


def test_math500_layout_keeps_subject_and_level():
    bench = load_benchmark("math500", f"file://{DATA / 'math500_layout.jsonl'}")
    item = bench.items[1]
    assert (item.id, item.answer, item.kind) == ("test/prealgebra/2.json", "\\frac{1}{2}", "math")
    assert item.metadata["subject"] == "Prealgebra" and item.metadata["level"] == 2


def test_gpqa_layout_shuffles_per_question_and_reproducibly():
    bench = load_benchmark("gpqa_diamond", str(DATA / "gpqa_layout.csv"))
    for item in bench.items:
        assert item.kind == "choice" and len(item.choices) == 4
        correct_text = str(sum(int(x) for x in item.question.removeprefix("Compute ").rstrip(".").split(" + ")))
        assert item.choices["ABCD".index(item.answer)] == correct_text
        assert f"{item.answer}) {correct_text}" in item.prompt
    again = load_benchmark("gpqa_diamond", str(DATA / "gpqa_layout.csv"))
    assert [i.choices for i in again.items] == [i.choices for i in bench.items]
    other_seed = load_benchmark("gpqa_diamond", str(DATA / "gpqa_layout.csv"), seed=1)
    assert [i.choices for i in other_seed.items] != [i.choices for i in bench.items]


def test_gpqa_correct_option_is_spread_over_positions(tmp_path):
    path = tmp_path / "gpqa.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "Record ID",
                "Question",
                "Correct Answer",
                "Incorrect Answer 1",
                "Incorrect Answer 2",
                "Incorrect Answer 3",
            ]
        )
        for i in range(200):
            w.writerow([f"r{i}", f"question {i}", "right", "wrong1", "wrong2", "wrong3"])
    letters = collections.Counter(i.answer for i in load_benchmark("gpqa_diamond", str(path)).items)
    assert set(letters) == set("ABCD") and max(letters.values()) < 80  # ~50 each, never one fixed slot


def test_generic_jsonl_with_choices_by_text_or_letter(tmp_path):
    path = tmp_path / "quiz.jsonl"
    rows = [
        {"question": "Largest?", "choices": ["1", "3", "2"], "answer": "3"},
        {"question": "Smallest?", "choices": ["1", "3", "2"], "answer": "a"},
        {"question": "2+2?", "answer": "4"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_benchmark("quiz", str(path)).items
    assert [(i.kind, i.answer) for i in items] == [("choice", "B"), ("choice", "A"), ("math", "4")]
    assert items[0].choices == ("1", "3", "2")  # a generic file keeps its own order
    assert items[2].id.startswith("q-") and items[2].id == load_benchmark("quiz", str(path)).items[2].id


def test_missing_known_benchmark_says_how_to_get_it(tmp_path):
    missing = tmp_path / "aime24.jsonl"
    with pytest.raises(BenchmarkError) as e:
        load_benchmark("aime24", str(missing))
    msg = str(e.value)
    assert str(missing) in msg and "HuggingFaceH4/aime_2024" in msg and "--benchmark aime24=" in msg
    with pytest.raises(BenchmarkError, match="licence"):
        load_benchmark("gpqa_diamond", str(tmp_path / "gpqa.csv"))


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "x", "answer": "1"}) + "\n")
    with pytest.raises(
        BenchmarkError,
        match=r"row 1: no question \(one of: question, problem, Question\); columns present: prompt, answer",
    ):
        load_benchmark("bad", str(path))


def test_bad_choice_answer_and_duplicate_ids(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "q", "choices": ["x", "y"], "answer": "z"}) + "\n")
    with pytest.raises(BenchmarkError, match="neither an option letter"):
        load_benchmark("bad", str(path))
    path.write_text((json.dumps({"id": 1, "question": "q", "answer": "1"}) + "\n") * 2)
    with pytest.raises(BenchmarkError, match="rows 1 and 2 share the id '1'"):
        load_benchmark("bad", str(path))


def test_limit_and_known_specs():
    assert len(load_benchmark("aime24", str(DATA / "aime_layout.jsonl"), limit=2).items) == 2
    assert {k: s.kind for k, s in KNOWN.items()} == {
        "aime24": "integer",
        "aime25": "integer",
        "math500": "math",
        "gpqa_diamond": "choice",
    }
