from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thinkube.workloads.formats import S1Record, load_records, save_records

# Shaped like simplescaling/s1K: metadata is a string, the trace a one-element list.
S1K_ROWS = [
    {
        "question": "Find the sum of all positive integers n such that n^2 < 20.",
        "solution": "10",
        "cot_type": "math",
        "source_type": "AI-MO/NuminaMath-CoT/aops_forum",
        "metadata": "{'source': 'aops_forum', 'problem': 'x'}",
        "cot": None,
        "thinking_trajectories": ["n can be 1, 2, 3, 4.\nWait, 4^2 = 16 < 20, yes.\nSum is 10."],
        "attempt": "The answer is $\\boxed{10}$.",
    },
    {
        "question": "Ein Würfel hat 6 Seiten. Wie viele Ecken?",
        "solution": None,
        "cot_type": "math",
        "source_type": "s1-teasers",
        "metadata": "{}",
        "cot": None,
        "thinking_trajectories": ["A cube", "has 8 corners."],
        "attempt": "Answer: 8",
    },
]

# Shaped like simplescaling/s1K-1.1: two teachers side by side plus their grades.
S1K11_ROWS = [
    {
        "question": "What is 2+2?",
        "solution": "4",
        "cot_type": "math",
        "source_type": "MATH",
        "metadata": "{'level': 1}",
        "gemini_thinking_trajectory": "gemini thinks 4",
        "gemini_attempt": "gemini says 4",
        "deepseek_thinking_trajectory": "Okay, 2+2.\nWait, it is 4.",
        "deepseek_attempt": "**Answer:** 4",
        "gemini_grade": "Yes",
        "gemini_grade_reason": "ok",
        "deepseek_grade": "Yes",
        "deepseek_grade_reason": "fine",
    },
    {
        "question": "What is 3*3?",
        "solution": "9",
        "cot_type": "math",
        "source_type": "MATH",
        "metadata": "{'level': 1}",
        "gemini_thinking_trajectory": "gemini thinks 9",
        "gemini_attempt": "gemini says 9",
        "deepseek_thinking_trajectory": "3 times 3 is 9.",
        "deepseek_attempt": "9",
        "gemini_grade": "No",
        "gemini_grade_reason": "bad",
        "deepseek_grade": "Yes",
        "deepseek_grade_reason": "fine",
    },
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def check_s1k(records: list[S1Record]) -> None:
    first, second = records
    assert first.question == S1K_ROWS[0]["question"]
    assert first.thinking == S1K_ROWS[0]["thinking_trajectories"][0]
    assert first.attempt == "The answer is $\\boxed{10}$."
    assert (first.solution, first.cot_type, first.source_type) == ("10", "math", "AI-MO/NuminaMath-CoT/aops_forum")
    assert first.metadata == "{'source': 'aops_forum', 'problem': 'x'}"
    assert first.extra == {"cot": None}  # a known s1K column no field uses is still kept
    assert second.thinking == "A cube\nhas 8 corners."  # several trajectory parts joined
    assert second.solution is None and second.question.startswith("Ein Würfel")


def test_s1k_jsonl(tmp_path):
    check_s1k(load_records(write_jsonl(tmp_path / "s1k.jsonl", S1K_ROWS)))


def test_s1k_json_lines_and_file_uri(tmp_path):
    path = write_jsonl(tmp_path / "s1k.json", S1K_ROWS)
    check_s1k(load_records(f"file://{path}"))


def test_s1k_parquet(tmp_path):
    check_s1k(load_records(write_parquet(tmp_path / "s1k.parquet", S1K_ROWS)))


def test_s1k11_picks_deepseek_by_default_and_keeps_the_rest(tmp_path):
    first, second = load_records(write_parquet(tmp_path / "s1k11.parquet", S1K11_ROWS))
    assert (first.thinking, first.attempt) == ("Okay, 2+2.\nWait, it is 4.", "**Answer:** 4")
    assert second.attempt == "9"
    assert first.extra == {
        "gemini_thinking_trajectory": "gemini thinks 4",
        "gemini_attempt": "gemini says 4",
        "gemini_grade": "Yes",
        "gemini_grade_reason": "ok",
        "deepseek_grade": "Yes",
        "deepseek_grade_reason": "fine",
    }


def test_s1k11_gemini_teacher(tmp_path):
    first, _ = load_records(write_jsonl(tmp_path / "s1k11.jsonl", S1K11_ROWS), teacher="gemini")
    assert (first.thinking, first.attempt) == ("gemini thinks 4", "gemini says 4")
    assert first.extra["deepseek_attempt"] == "**Answer:** 4"


def test_s1k11_missing_teacher_columns(tmp_path):
    rows = [{k: v for k, v in r.items() if not k.startswith("deepseek")} for r in S1K11_ROWS]
    path = write_jsonl(tmp_path / "gemini_only.jsonl", rows)
    with pytest.raises(ValueError, match="'deepseek_thinking_trajectory' for field 'thinking'.*teacher="):
        load_records(path)
    assert load_records(path, teacher="gemini")[0].attempt == "gemini says 4"


def test_unknown_teacher():
    with pytest.raises(ValueError, match="teacher must be one of deepseek, gemini"):
        load_records("/nonexistent.jsonl", teacher="claude")


def test_saved_dataset_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(S1K_ROWS).save_to_disk(str(tmp_path / "ds"))
    check_s1k(load_records(tmp_path / "ds"))

    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(S1K11_ROWS), "test": datasets.Dataset.from_list(S1K11_ROWS[1:])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert [r.question for r in load_records(tmp_path / "dd")] == ["What is 2+2?", "What is 3*3?"]
    assert [r.question for r in load_records(tmp_path / "dd", split="test")] == ["What is 3*3?"]
    with pytest.raises(ValueError, match="no split 'validation'; splits found: train, test"):
        load_records(tmp_path / "dd", split="validation")


def test_folder_of_files_reads_only_the_split(tmp_path):
    data = tmp_path / "snapshot" / "data"
    data.mkdir(parents=True)
    write_parquet(data / "train-00000-of-00002.parquet", S1K_ROWS[:1])
    write_jsonl(data / "train-00001-of-00002.jsonl", S1K_ROWS[1:])
    write_parquet(data / "test-00000-of-00001.parquet", S1K11_ROWS)
    (tmp_path / "snapshot" / "README.md").write_text("# card")
    check_s1k(load_records(tmp_path / "snapshot"))

    plain = tmp_path / "plain"
    plain.mkdir()
    write_jsonl(plain / "a.jsonl", [{"question": "q1"}])
    write_jsonl(plain / "b.jsonl", [{"question": "q2"}])
    assert [r.question for r in load_records(plain)] == ["q1", "q2"]


def test_plain_layout_and_coercion(tmp_path):
    rows = [
        {
            "question": "q",
            "thinking": "t",
            "attempt": "a",
            "domain": 5,
            "id": 17,
            "metadata": {"level": 3},
            "difficulty": 0.7,
        }
    ]
    (rec,) = load_records(write_jsonl(tmp_path / "plain.jsonl", rows))
    assert (rec.thinking, rec.attempt, rec.domain, rec.id) == ("t", "a", "5", "17")
    assert rec.metadata == {"level": 3} and rec.extra == {"difficulty": 0.7}


def test_column_map_overrides_detection(tmp_path):
    rows = [{"problem": "p?", "reasoning": "r", "final": "f", "thinking_trajectories": ["ignored"], "answer": "x"}]
    (rec,) = load_records(
        write_jsonl(tmp_path / "own.jsonl", rows),
        column_map={"question": "problem", "thinking": "reasoning", "attempt": "final", "solution": "answer"},
    )
    assert (rec.question, rec.thinking, rec.attempt, rec.solution) == ("p?", "r", "f", "x")
    assert rec.extra == {"thinking_trajectories": ["ignored"]}


def test_missing_question_column_explains_fix(tmp_path):
    path = write_jsonl(tmp_path / "noq.jsonl", [{"problem": "p", "attempt": "a"}])
    with pytest.raises(
        ValueError,
        match=r"missing column 'question'; columns found: problem, attempt; "
        r"pass column_map=\{'question': '<your column>'\}",
    ):
        load_records(path)


def test_column_map_errors(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q"}])
    with pytest.raises(ValueError, match="column 'nope' for field 'thinking'.*columns found: question"):
        load_records(path, column_map={"thinking": "nope"})
    with pytest.raises(ValueError, match=r"column_map keys \['reasoning'\] are not record fields"):
        load_records(path, column_map={"reasoning": "question"})


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/absent.jsonl: no such file"):
        load_records(tmp_path / "absent.jsonl")


def test_unsupported_extension(tmp_path):
    (tmp_path / "d.csv").write_text("question\nq\n")
    with pytest.raises(ValueError, match=r"unsupported format '\.csv'; supported: \.jsonl"):
        load_records(tmp_path / "d.csv")
    with pytest.raises(ValueError, match="folder holds no data files"):
        load_records(tmp_path)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok"}\n\n{"question": broken}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: invalid JSON"):
        load_records(path)
    path.write_text('{"question": "ok"}\n["a list"]\n')
    with pytest.raises(ValueError, match="line 2: expected a JSON object, got list"):
        load_records(path)


def test_empty_dataset(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="empty.jsonl has no rows"):
        load_records(tmp_path / "empty.jsonl")


def test_row_with_empty_or_missing_question_names_row(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"question": "fine"}, {"question": "  \n"}])
    with pytest.raises(ValueError, match="row index 1: question: Value error, question is empty"):
        load_records(path)
    path = write_jsonl(tmp_path / "rows2.jsonl", [{"question": "fine"}, {"other": 1}, {"question": "x"}])
    with pytest.raises(ValueError, match="row index 1: question"):
        load_records(path)


def test_s1record_rejects_unknown_fields():
    with pytest.raises(ValueError, match="thinkin"):
        S1Record(question="q", thinkin="typo")


@pytest.mark.parametrize("name", ["out.jsonl", "sub/out.parquet", "out.json"])
def test_save_load_round_trip(tmp_path, name):
    records = [
        S1Record(
            question="Q1 ∑ é",
            solution="s",
            thinking="line1\nWait\nline3",
            attempt="Answer: 1",
            cot_type="math",
            source_type="MATH",
            metadata={"level": 5, "tags": ["a", "b"]},
            domain="05",
            id="r1",
            extra={"gemini_attempt": "g", "grade": {"ok": True}, "n": 3},
        ),
        S1Record(question="Q2", metadata="{'python': 'repr'}", extra={"other_key": None}),
        S1Record(question="Q3"),
    ]
    path = save_records(records, tmp_path / name)
    assert path.is_file()
    assert load_records(path) == records


def test_s1k11_round_trip_keeps_both_teachers(tmp_path):
    loaded = load_records(write_parquet(tmp_path / "in.parquet", S1K11_ROWS))
    again = load_records(save_records(loaded, tmp_path / "out.parquet"))
    assert again == loaded and again[0].extra["gemini_attempt"] == "gemini says 4"


def test_save_unsupported_extension(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported format '\.csv'; save as \.jsonl"):
        save_records([S1Record(question="q")], tmp_path / "out.csv")
