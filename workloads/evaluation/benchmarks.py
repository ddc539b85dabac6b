"""Benchmarks as data files the user supplies: AIME 2024/2025, MATH-500, GPQA Diamond, or
any table of questions and answers. Nothing is bundled or downloaded (GPQA's licence
forbids redistribution); a missing file fails with the command that fetches it.

Record layout after loading (`BenchmarkItem`):
    id        str   stable per question: the file's id column, else a hash of the question
    question  str   the problem statement (for choice items, without the options)
    answer    str   reference: an integer (kind "integer"), LaTeX (kind "math"), or the
                    correct option letter after shuffling (kind "choice")
    kind      str   "integer" | "math" | "choice": which grader applies
    choices   list  the options in presentation order (choice items only)
    metadata  dict  every other column (subject, level, ...)

Input: a JSONL, CSV or Parquet file, or a `save_to_disk` folder, by path, file:// or
pvc://; or an hf://<org>/<name> dataset id without configs (AIME, MATH-500; needs the
`datasets` package). Columns recognised (first match wins):
    question  question | problem | Question
    answer    answer | Answer | Correct Answer (GPQA: the text of the correct option)
    id        id | ID | unique_id | problem_idx | Record ID
    choices   choices | options (a list), or GPQA's Correct Answer + Incorrect Answer 1..3
    kind      optional per row; else the benchmark's kind (generic files: "choice" when
              choices are given, otherwise "math")
Known layouts: AIME (`problem`, `answer`, `id`), MATH-500 (`problem`, `answer`, `subject`,
`level`, `unique_id`), GPQA (`Question`, `Correct Answer`, `Incorrect Answer 1..3`,
`Record ID`). GPQA options are shuffled with a seed derived from (seed, question id), so
the correct option is never at a fixed position and the order is reproducible.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from thinkube.workloads.grading.grade import KINDS, LETTERS
from thinkube.workloads.uris import local_path, parse_uri

log = logging.getLogger(__name__)

_QUESTION_COLUMNS = ("question", "problem", "Question")
_ANSWER_COLUMNS = ("answer", "Answer", "Correct Answer")
_ID_COLUMNS = ("id", "ID", "unique_id", "problem_idx", "Record ID")
_CHOICE_COLUMNS = ("choices", "options")
_GPQA_WRONG = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

_MATH_PROMPT = "{question}\n\nPut your final answer within \\boxed{{}}."
_CHOICE_PROMPT = (
    "{question}\n\n{options}\n\nThink step by step, then give the letter of the correct option as 'Answer: X'."
)


@dataclass(frozen=True)
class BenchmarkSpec:
    title: str
    kind: str
    size: int  # items in the official set: a different count is logged, not refused
    how_to_get: str
    split: str = "train"  # for hf:// ids


_HF = "python -c \"import datasets; datasets.load_dataset({args}).to_json('{file}')\""
KNOWN: dict[str, BenchmarkSpec] = {
    "aime24": BenchmarkSpec(
        "AIME 2024",
        "integer",
        30,
        _HF.format(args="'HuggingFaceH4/aime_2024', split='train'", file="aime24.jsonl")
        + "  (s1 reports the no-figures variant: 'simplescaling/aime24_nofigures')",
    ),
    "aime25": BenchmarkSpec(
        "AIME 2025", "integer", 30, _HF.format(args="'MathArena/aime_2025', split='train'", file="aime25.jsonl")
    ),
    "math500": BenchmarkSpec(
        "MATH-500",
        "math",
        500,
        _HF.format(args="'HuggingFaceH4/MATH-500', split='test'", file="math500.jsonl"),
        split="test",
    ),
    "gpqa_diamond": BenchmarkSpec(
        "GPQA Diamond",
        "choice",
        198,
        "accept the licence at https://huggingface.co/datasets/Idavidrein/gpqa, log in "
        "(`hf auth login`), then "
        + _HF.format(args="'Idavidrein/gpqa', 'gpqa_diamond', split='train'", file="gpqa_diamond.jsonl")
        + "  (or use gpqa_diamond.csv from the GPQA release); never commit it",
    ),
}


ALIASES = {"gpqa": "gpqa_diamond", "aime2024": "aime24", "aime2025": "aime25", "math-500": "math500"}


@dataclass(frozen=True)
class BenchmarkItem:
    id: str
    question: str
    answer: str
    kind: str
    choices: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def prompt(self) -> str:
        """The user message sent to the model."""
        if self.kind == "choice":
            options = "\n".join(f"{LETTERS[i]}) {text}" for i, text in enumerate(self.choices))
            return _CHOICE_PROMPT.format(question=self.question, options=options)
        return _MATH_PROMPT.format(question=self.question)


@dataclass(frozen=True)
class Benchmark:
    name: str
    source: str
    items: tuple[BenchmarkItem, ...]


class BenchmarkError(ValueError):
    """A benchmark file is missing or malformed; the message says which and how to fix it."""


def _read_rows(uri: str, path: Path | None, split: str) -> list[dict]:
    # GPQA is released as CSV; everything else goes through the shared dataset reader
    # (JSONL, Parquet, `save_to_disk` folders, hf:// ids).
    if path is not None and path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    from thinkube.workloads.formats import iter_rows  # pyarrow: loaded only when a benchmark is read

    try:
        return list(iter_rows(uri, split=split))
    except ValueError as e:
        raise BenchmarkError(f"{e} (benchmarks may also be .csv)") from e


def _first(row: dict, columns: tuple[str, ...]):
    for col in columns:
        if row.get(col) not in (None, ""):
            return row[col]
    return None


def _shuffled(correct: str, wrong: list[str], seed: int, item_id: str) -> tuple[tuple[str, ...], str]:
    # A string seed is hashed with SHA-512 by `random`, so the order is the same on every
    # machine and Python run, and differs between questions.
    options = [correct, *wrong]
    random.Random(f"{seed}:{item_id}").shuffle(options)
    return tuple(options), LETTERS[options.index(correct)]


def _item(row: dict, index: int, name: str, default_kind: str | None, seed: int) -> BenchmarkItem:
    where = f"benchmark {name!r}, row {index + 1}"
    question = _first(row, _QUESTION_COLUMNS)
    answer = _first(row, _ANSWER_COLUMNS)
    if question is None or answer is None:
        missing = (
            "question (one of: " + ", ".join(_QUESTION_COLUMNS) + ")"
            if question is None
            else "answer (one of: " + ", ".join(_ANSWER_COLUMNS) + ")"
        )
        raise BenchmarkError(f"{where}: no {missing}; columns present: {', '.join(map(str, row)) or 'none'}")
    question, answer = str(question).strip(), str(answer).strip()
    raw_id = _first(row, _ID_COLUMNS)
    item_id = str(raw_id) if raw_id is not None else "q-" + hashlib.sha1(question.encode()).hexdigest()[:12]
    used = set(_QUESTION_COLUMNS + _ANSWER_COLUMNS + _ID_COLUMNS + _CHOICE_COLUMNS + _GPQA_WRONG + ("kind",))
    metadata = {k: v for k, v in row.items() if k not in used}
    wrong = [str(row[c]).strip() for c in _GPQA_WRONG if row.get(c) not in (None, "")]
    listed = _first(row, _CHOICE_COLUMNS)
    kind = row.get("kind") or default_kind or ("choice" if wrong or listed else "math")
    if kind not in KINDS:
        raise BenchmarkError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind != "choice":
        return BenchmarkItem(item_id, question, answer, kind, (), metadata)
    if wrong:  # GPQA layout: the correct text plus three distractors, shuffled per question
        choices, letter = _shuffled(answer, wrong, seed, item_id)
        return BenchmarkItem(item_id, question, letter, kind, choices, metadata)
    if not listed:
        raise BenchmarkError(
            f"{where}: a choice question needs `choices` (a list) or GPQA's "
            f"'Correct Answer' and 'Incorrect Answer 1..3' columns"
        )
    choices = tuple(str(c).strip() for c in listed)
    if len(choices) > len(LETTERS):
        raise BenchmarkError(f"{where}: {len(choices)} choices; at most {len(LETTERS)} are supported")
    # A generic file keeps its own option order; the answer is a letter or the option's text.
    if answer.upper() in LETTERS[: len(choices)]:
        return BenchmarkItem(item_id, question, answer.upper(), kind, choices, metadata)
    if answer in choices:
        return BenchmarkItem(item_id, question, LETTERS[choices.index(answer)], kind, choices, metadata)
    raise BenchmarkError(
        f"{where}: answer {answer!r} is neither an option letter "
        f"({LETTERS[0]}-{LETTERS[len(choices) - 1]}) nor the text of one of the choices"
    )


def load_benchmark(name: str, uri: str, *, seed: int = 0, limit: int | None = None) -> Benchmark:
    """Load benchmark `name` (a key of KNOWN, or any name for a generic file) from `uri`.

    `seed` drives the GPQA option shuffle; `limit` keeps the first items (smoke runs).
    """
    spec = KNOWN.get(ALIASES.get(name, name))
    try:
        parsed = parse_uri(uri)
        path = local_path(uri) if parsed.scheme != "hf" else None
    except ValueError as e:
        raise BenchmarkError(f"benchmark {name!r}: {e}") from e
    if path is not None and not path.exists():
        hint = (
            f"get it with: {spec.how_to_get}, then pass --benchmark {name}=<that file>"
            if spec
            else "give a JSONL, CSV or Parquet file with question and answer columns"
        )
        raise BenchmarkError(
            f"benchmark {name!r}: no file at {path}. {spec.title + ' is not bundled; ' if spec else ''}{hint}"
        )
    rows = _read_rows(uri, path, spec.split if spec else "train")
    if limit is not None:
        rows = rows[:limit]
    items = [_item(row, i, name, spec.kind if spec else None, seed) for i, row in enumerate(rows)]
    if not items:
        raise BenchmarkError(f"benchmark {name!r}: {path} holds no rows")
    seen: dict[str, int] = {}
    for i, item in enumerate(items):  # ids key the resumable records, so they must be unique
        if item.id in seen:
            raise BenchmarkError(
                f"benchmark {name!r}: rows {seen[item.id] + 1} and {i + 1} share the id {item.id!r} "
                f"(from the id column, else the question text); remove or re-number the duplicate"
            )
        seen[item.id] = i
    if spec and limit is None and len(items) != spec.size:
        log.warning(
            "benchmark %s: %d items in %s, the official %s has %d", name, len(items), path, spec.title, spec.size
        )
    return Benchmark(name, str(uri), tuple(items))
