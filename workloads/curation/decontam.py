"""Word n-gram decontamination against benchmark questions (s1: 8-grams).

The benchmark n-grams are hashed once into a dict (hash -> benchmark name); each pool
question is then checked n-gram by n-gram in O(length), so the stage is linear in the pool
size, never pool x benchmark. Python's tuple hash is salted per process, which is fine:
the table is rebuilt every run and never stored.
"""

from __future__ import annotations

import re

from thinkube.workloads.curation.rows import StageResult, decide
from thinkube.workloads.formats import S1Record, iter_rows

# Question columns of the usual benchmark files (AIME, MATH-500, GPQA, LiveCodeBench).
BENCHMARK_QUESTION_COLUMNS = ("question", "problem", "Question", "Problem", "prompt", "question_content")
_WORD = re.compile(r"\w+")


def ngram_hashes(text: str, n: int) -> list[int]:
    """Hashes of the lower-cased word n-grams, in text order (so the first benchmark hit
    reported is stable); a text shorter than n words is one gram."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return [hash(tuple(words))] if words else []
    return [hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)]


def benchmark_questions(name: str, uri: str, column: str | None) -> list[str]:
    rows = list(iter_rows(uri))
    if not rows:
        raise ValueError(f"benchmark {name!r} ({uri}) has no rows")
    found = list(dict.fromkeys(k for row in rows[:100] for k in row))
    col = column or next((c for c in BENCHMARK_QUESTION_COLUMNS if c in found), None)
    if col is None or col not in found:
        raise ValueError(
            f"benchmark {name!r} ({uri}): no question column {column or BENCHMARK_QUESTION_COLUMNS}; "
            f"columns found: {', '.join(found)}; pass --benchmark-question-column COL"
        )
    return [str(row[col]) for row in rows if row.get(col)]


def build_index(benchmarks: dict[str, list[str]], n: int) -> dict[int, str]:
    index: dict[int, str] = {}
    for name, questions in benchmarks.items():
        for q in questions:
            for h in ngram_hashes(q, n):
                index.setdefault(h, name)
    return index


def decontaminate(records: list[S1Record], index: dict[int, str], n: int) -> StageResult:
    result = StageResult([])
    for r in records:
        hit = next((index[h] for h in ngram_hashes(r.question, n) if h in index), None) if index else None
        if hit is None:
            result.kept.append(r)
        else:
            decide(r, "decontaminate", {"benchmark": hit})
            result.dropped.append((r, f"contaminated:{hit}"))
    return result
