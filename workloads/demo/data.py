"""The demo's question pool and held-out benchmark, generated from a seed.

The pool holds questions and reference answers only, as a team's own pool would: the
distill stage asks the demo's teacher (teacher.py, served by `thinkube serve`) for the
traces. It plants what curation must remove, so its stage counts mean something: exact
duplicates, copies of benchmark questions (contamination), rows with formatting artefacts
s1's quality rules catch, and questions the teacher cannot read (it loops until the call's
token cap cuts it off: a failed teacher call). Every planted row is tagged in
`extra.planted`, so a test can check each one went where it should.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from thinkube.workloads.demo.tasks import LEVELS, SLOTS, Problem, problems
from thinkube.workloads.formats import S1Record, save_records

POOL_FILE, BENCHMARK_FILE = "pool.jsonl", "heldout.jsonl"
BENCHMARK_NAME = "heldout"
BENCHMARK_STEPS = (5, SLOTS)  # held-out questions long enough that a short budget must hurt
LEVEL_MIX = {"easy": 0.2, "medium": 0.35, "hard": 0.45}

# Artefact -> how it is planted; each matches one of curation's quality rules.
ARTEFACTS = {
    "asy": lambda r: r.model_copy(update={"question": r.question.replace("\n", "\n[asy]draw((0,0));[/asy]\n", 1)}),
    "image": lambda r: r.model_copy(update={"question": r.question + "\n![Image](figure.png)"}),
    "numbering": lambda r: r.model_copy(update={"question": "p1. " + r.question}),
    "bold_digits": lambda r: r.model_copy(update={"question": r.question.replace("\n", " **10**\n", 1)}),
    # A slot the teacher cannot read: the distill stage records its call as failed.
    "teacher_failed": lambda r: r.model_copy(update={"question": r.question.replace("\nA:", "\nA:?", 1)}),
}


@dataclass(frozen=True)
class DataSpec:
    pool_size: int = 1500  # clean rows before planting
    benchmark_size: int = 120
    seed: int = 0

    # What is planted scales with the sizes, so a small test pool plants some of everything.
    @property
    def leaked(self) -> int:  # benchmark questions copied into the pool
        return self.benchmark_size // 4

    @property
    def duplicates(self) -> int:
        return max(1, self.pool_size * 3 // 100)

    @property
    def per_artefact(self) -> int:
        return max(1, self.pool_size // 150)

    def validate(self) -> None:
        if self.pool_size < 100:
            raise ValueError(f"pool_size {self.pool_size}: use at least 100 rows")
        if self.benchmark_size < 4:
            raise ValueError(f"benchmark_size {self.benchmark_size}: use at least 4 questions")


def _tag(r: S1Record, what: str) -> S1Record:
    return r.model_copy(update={"extra": {**r.extra, "planted": what}})


def build(spec: DataSpec) -> tuple[list[S1Record], list[Problem]]:
    """(pool rows, benchmark problems); deterministic for a spec."""
    rng = random.Random(spec.seed)
    bench = problems(spec.benchmark_size, spec.seed + 1, BENCHMARK_STEPS)
    taken = {p.question for p in bench}
    pool: list[S1Record] = []
    for k, (level, share) in enumerate(LEVEL_MIX.items()):
        n = round(spec.pool_size * share)
        pool += [
            p.pool_row(f"{level}-{i}")
            for i, p in enumerate(problems(n, spec.seed + 10 + k, LEVELS[level], exclude=taken))
        ]
        taken |= {r.question for r in pool}
    rng.shuffle(pool)
    # Disjoint slices: a duplicated row never also gets an artefact (it would stop being a copy).
    n_art = spec.per_artefact * len(ARTEFACTS)
    originals, victims, clean = (
        pool[: spec.duplicates],
        pool[spec.duplicates : spec.duplicates + n_art],
        pool[spec.duplicates + n_art :],
    )
    rows = originals + clean
    rows += [_tag(r.model_copy(update={"id": f"dup-{i}"}), "duplicate") for i, r in enumerate(originals)]
    rows += [
        _tag(ARTEFACTS[name](r), name)
        for i, r in enumerate(victims)
        for name in [list(ARTEFACTS)[i // spec.per_artefact]]
    ]
    rows += [_tag(p.pool_row(f"leak-{i}"), "leaked") for i, p in enumerate(rng.sample(bench, spec.leaked))]
    rng.shuffle(rows)
    return rows, bench


class Written(NamedTuple):
    pool: Path
    benchmark: Path
    pool_rows: int


def write(spec: DataSpec, folder: Path) -> Written:
    """Writes the pool (s1 records) and the benchmark (id, question, answer, metadata)."""
    rows, bench = build(spec)
    folder.mkdir(parents=True, exist_ok=True)
    pool_path, bench_path = folder / POOL_FILE, folder / BENCHMARK_FILE
    save_records(rows, pool_path)
    with bench_path.open("w", encoding="utf-8") as f:
        for i, p in enumerate(bench):
            f.write(
                json.dumps(
                    {
                        "id": f"heldout-{i}",
                        "question": p.benchmark_question,
                        "answer": p.answer,
                        "kind": "integer",
                        "domain": p.domain.name,
                        "steps": len(p.digits),
                    }
                )
                + "\n"
            )
    return Written(pool_path, bench_path, len(rows))
