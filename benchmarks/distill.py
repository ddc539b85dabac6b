"""Distillation benchmark: `python benchmarks/distill.py` (CPU, ~1-2 min).

1. Throughput of the distill stage against a local `thinkube serve` (the demo's synthetic
   teacher engine, so the server is fast and the client's share shows) at concurrency 1, 8
   and 32: calls/s, against raw httpx requests to the same server in the same run, and the
   client's own overhead per call (limiter, cache, parsing, grading).
2. The rate limiter: the achieved request rate against its requests-per-minute setting,
   and the achieved token rate against its tokens-per-minute setting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from thinkube.api.stages.curate import CurateConfig, TeacherConfig  # noqa: E402
from thinkube.workloads.curation.cache import CallCache  # noqa: E402
from thinkube.workloads.curation.distill import distill  # noqa: E402
from thinkube.workloads.curation.ingest import ingest  # noqa: E402
from thinkube.workloads.demo.tasks import problems  # noqa: E402
from thinkube.workloads.formats import save_records  # noqa: E402
from thinkube.workloads.serving.process import ServeProcess  # noqa: E402

NAME = "demo-teacher"
REPEATS = 3


async def raw(url: str, questions: list[str], concurrency: int) -> float:
    """Seconds for plain POSTs of every question: the baseline."""
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(q: str) -> None:
            async with sem:
                r = await client.post(
                    f"{url}/v1/chat/completions",
                    json={"model": NAME, "messages": [{"role": "user", "content": q}], "max_tokens": 96},
                )
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        return time.perf_counter() - start


def stage(url: str, pool: Path, folder: Path, **teacher) -> tuple[float, dict]:
    """Seconds for the distill stage over the pool (fresh cache), and its figures."""
    cfg = CurateConfig(
        out=str(folder),
        pools={"demo": str(pool)},
        domain_column="domain",
        answer_kinds={"demo": "integer"},
        teacher=TeacherConfig(endpoint=f"{url}@{NAME}", max_tokens=96, **teacher),
    )
    rows = ingest(cfg).kept
    cache = CallCache(folder / "calls.jsonl")
    start = time.perf_counter()
    result = asyncio.run(distill(rows, cfg, cache))
    seconds = time.perf_counter() - start
    cache.close()
    return seconds, result.info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=256)
    ap.add_argument("--rpm", type=float, default=1200.0)
    ap.add_argument("--tpm", type=float, default=60000.0)
    args = ap.parse_args()
    chosen = problems(args.calls, 7, (1, 10))
    questions = [p.question for p in chosen]
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServeProcess("--engine", NAME, "--served-model-name", NAME, log_path=Path(tmp) / "server.log").wait(
            120
        ) as server,
    ):
        pool = Path(tmp) / "pool.jsonl"
        save_records([p.pool_row(f"q{i}") for i, p in enumerate(chosen)], pool)
        asyncio.run(raw(server.url, questions[:16], 4))  # warm-up
        print(f"distill stage vs raw POSTs, {args.calls} calls to a local thinkube serve ({NAME} engine)")
        print("| concurrency | raw calls/s | distill calls/s | ratio | client overhead per call (ms) |")
        print("|---|---|---|---|---|")
        for c in (1, 8, 32):
            # Best of REPEATS, alternating, so a busy machine slows both sides alike.
            base, seconds = float("inf"), float("inf")
            for i in range(REPEATS):
                base = min(base, asyncio.run(raw(server.url, questions, c)))
                took, info = stage(server.url, pool, Path(tmp) / f"c{c}-{i}", concurrency=c)
                assert info["failed"] == 0 and info["calls_made"] == args.calls, info
                seconds = min(seconds, took)
            print(
                f"| {c} | {args.calls / base:.1f} | {args.calls / seconds:.1f} | {base / seconds:.2f} | "
                f"{1000 * (seconds - base) / args.calls:.2f} |"
            )

        n = min(args.calls, 100)
        small = Path(tmp) / "small.jsonl"
        save_records([p.pool_row(f"q{i}") for i, p in enumerate(chosen[:n])], small)
        seconds, info = stage(server.url, small, Path(tmp) / "rpm", concurrency=32, requests_per_minute=args.rpm)
        achieved = 60 * (n - 1) / seconds  # n calls are n-1 intervals
        print(
            f"\nrate limit {args.rpm:.0f} requests/min: achieved {achieved:.0f}/min over {n} calls "
            f"(ratio {achieved / args.rpm:.3f})"
        )
        seconds, info = stage(server.url, small, Path(tmp) / "tpm", concurrency=32, tokens_per_minute=args.tpm)
        tokens = info["tokens_in"] + info["tokens_out"]
        achieved = 60 * tokens / seconds
        print(
            f"rate limit {args.tpm:.0f} tokens/min: achieved {achieved:.0f}/min, {tokens} tokens over {n} calls "
            f"(ratio {achieved / args.tpm:.3f}; the first second's credit and the calls in flight when the "
            f"credit runs out come on top)"
        )


if __name__ == "__main__":
    main()
