"""Curation benchmark: `python benchmarks/curation.py` (CPU, no model calls, ~1-2 min on 2 cores).

A synthetic 59,000-row pool (s1's pool size) with planted duplicates, benchmark leaks,
missing teacher output and formatting artefacts; domains come from a column and the
difficulty stage is skipped, as no model is called.
1. Each stage on its own: wall time, then peak traced memory (tracemalloc, a second pass:
   tracing slows Python down, so it never pollutes the timings).
2. Decontamination scaling from 10K to 59K rows: time per row against the 10K baseline
   measured in the same run (a ratio near 1 means linear).
3. The whole pipeline through `Pipeline` (stage files written, reports, chart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thinkube.api.stages.curate import CurateConfig  # noqa: E402
from thinkube.workloads.curation import decontam, domains, ingest, quality, select, trace  # noqa: E402
from thinkube.workloads.curation.pipeline import Pipeline  # noqa: E402

WORDS = [f"w{i}" for i in range(5000)] + ["find", "the", "sum", "of", "prime", "integer", "triangle", "area"]
DOMAINS = ["05", "11", "12", "15", "26", "28", "33", "34", "51", "52", "60", "62", "68", "81", "97"]
# Roughly s1's mix: auto-included AIME and GPQA rows are ~2% of the pool.
SOURCES = {
    "qfq/openaimath/Algebra": 0.20,
    "AI-MO/NuminaMath-CoT/olympiads": 0.52,
    "qq8933/AIME_1983_2024": 0.015,
    "Idavidrein/gpqa": 0.006,
    "OlympicArena": 0.259,
}


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n))


def make_pool(n: int, bench: list[str], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q = sentence(rng, rng.randint(25, 120))
        roll = rng.random()
        if roll < 0.02 and rows:
            q = rows[rng.randrange(len(rows))]["question"].upper()  # exact duplicate after normalising
        elif roll < 0.03:
            q = "Variant: " + rng.choice(bench)  # leaked benchmark question
        elif roll < 0.05:
            q = rng.choice(["[asy]draw(unitcircle);[/asy] ", "![Image](a.png) ", "p12. ", "**Case 3** "]) + q
        rows.append(
            {
                "id": f"r{i}",
                "question": q,
                "solution": f"\\boxed{{{rng.randint(0, 999)}}}",
                "thinking": None if rng.random() < 0.08 else sentence(rng, rng.randint(20, 400)),
                "attempt": "Answer: 1",
                "source_type": rng.choices(list(SOURCES), weights=list(SOURCES.values()))[0],
                "msc": rng.choice(DOMAINS),
                "grade": rng.choice(["Yes", "No"]),
            }
        )
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    with path.open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def measure(fn, trace_memory: bool):
    if trace_memory:
        tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = 0
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak


def stage_pass(cfg: CurateConfig, trace_memory: bool) -> list[tuple[str, int, int, float, int]]:
    """(stage, rows in, rows out, seconds, peak bytes) for each stage, run in order."""
    rows: list = []
    out = []
    steps = [
        ("ingest", lambda _: ingest.ingest(cfg)),
        ("dedupe", ingest.dedupe),
        (
            "decontaminate",
            lambda rs: decontam.decontaminate(
                rs,
                decontam.build_index(
                    {n: decontam.benchmark_questions(n, u, None) for n, u in cfg.decontaminate.items()}, cfg.ngram
                ),
                cfg.ngram,
            ),
        ),
        ("quality", lambda rs: quality.quality_filter(rs, quality.build_rules(cfg))),
        ("trace", lambda rs: trace.measure_traces(rs, cfg.tokenizer)),
        ("domains", lambda rs: domains.domains_from_column(rs, cfg.domain_column)),
        ("select", lambda rs: select.select(rs, cfg)),
    ]
    for name, fn in steps:
        result, seconds, peak = measure(lambda: fn(rows), trace_memory)
        out.append((name, len(rows), len(result.kept), seconds, peak))
        rows = result.kept
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=59_000)
    p.add_argument("--bench", type=int, default=728, help="benchmark questions (AIME24 + MATH500 + GPQA Diamond: 728)")
    args = p.parse_args()
    rng = random.Random(1)
    bench = [sentence(rng, rng.randint(20, 80)) for _ in range(args.bench)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_jsonl([{"problem": q} for q in bench], tmp / "bench.jsonl")
        pool_rows = make_pool(args.rows, bench)
        write_jsonl(pool_rows, tmp / "pool.jsonl")
        cfg = CurateConfig(
            out=str(tmp / "run"),
            pools={"synthetic": str(tmp / "pool.jsonl")},
            decontaminate={"bench": str(tmp / "bench.jsonl")},
            domain_column="msc",
            target_size=1000,
        )

        print(f"## Stages on a {args.rows:,}-row synthetic pool ({args.bench} benchmark questions)\n")
        timed = stage_pass(cfg, trace_memory=False)
        traced = stage_pass(cfg, trace_memory=True)
        print("| stage | rows in | rows out | wall s | rows/s | peak traced MiB |\n|---|---|---|---|---|---|")
        for (name, n_in, n_out, seconds, _), (*_, peak) in zip(timed, traced):
            rate = f"{n_in / seconds:,.0f}" if n_in else "-"
            print(f"| {name} | {n_in:,} | {n_out:,} | {seconds:.3f} | {rate} | {peak / 2**20:.1f} |")

        print("\n## Decontamination scaling (time per row vs the 10K baseline of this run)\n")
        records = ingest.load_pool("synthetic", str(tmp / "pool.jsonl"), None)
        index = decontam.build_index({"bench": bench}, cfg.ngram)
        print("| rows | seconds | us/row | ratio to 10K |\n|---|---|---|---|")
        baseline = None
        for n in (10_000, 20_000, 40_000, args.rows):
            sample = records[:n]
            best = min(measure(lambda: decontam.decontaminate(sample, index, cfg.ngram), False)[1] for _ in range(3))
            per_row = best / len(sample)
            baseline = baseline or per_row
            print(f"| {len(sample):,} | {best:.3f} | {per_row * 1e6:.1f} | {per_row / baseline:.2f} |")

        print("\n## Whole pipeline (stage files, reports, chart)\n")
        start = time.perf_counter()
        data = asyncio.run(Pipeline(cfg).run())
        total = time.perf_counter() - start
        print(
            f"{data['selected']} rows selected from {args.rows:,} in {total:.1f} s; per stage: "
            + ", ".join(f"{s['stage']} {s['seconds']:.2f} s" for s in data["stages"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
