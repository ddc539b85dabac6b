"""Evaluation benchmark: `python benchmarks/evaluation.py` (CPU, ~2-3 min on 2 cores).

1. Grading throughput on 5,000 synthetic MATH-style answers (fractions, radicals,
   intervals, sets, equations, decimals; correct and wrong): a process pool vs
   single-threaded, same answers, same run; the verdicts must be identical.
2. Sweep overhead: the same requests sent (a) raw with httpx and (b) through a sweep
   (HTTP target, grading, JSONL records), both to one small HTTP server on 127.0.0.1
   started here in its own process that answers instantly, so the difference is the
   sweep's own overhead, not generation time.
Ratios are printed against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thinkube.workloads.evaluation.benchmarks import Benchmark, BenchmarkItem  # noqa: E402
from thinkube.workloads.evaluation.settings import BudgetSetting  # noqa: E402
from thinkube.workloads.evaluation.sweep import Sweep, SweepConfig  # noqa: E402
from thinkube.workloads.evaluation.targets import HTTPTarget  # noqa: E402
from thinkube.workloads.grading.grade import grade_many  # noqa: E402
from thinkube.workloads.serving.process import free_port  # noqa: E402


def math_answers(count: int, seed: int = 0) -> list[tuple[str, str, str, int]]:
    """(kind, gold, response, n_choices) in MATH's styles; about half the responses are right."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        a, b, c = rng.randint(1, 40), rng.randint(2, 40), rng.randint(1, 9)
        right = rng.random() < 0.5
        style = i % 7
        if style == 0:
            gold, pred = (
                rf"\frac{{{a}}}{{{b}}}",
                rf"\dfrac{{{a * c}}}{{{b * c}}}" if right else rf"\frac{{{a + 1}}}{{{b}}}",
            )
        elif style == 1:
            gold, pred = rf"{c}\sqrt{{{b}}}", rf"\sqrt{{{c * c * b}}}" if right else rf"\sqrt{{{c * b}}}"
        elif style == 2:
            gold, pred = rf"(-\infty, {a}]", rf"(-\infty,{a}]" if right else rf"(-\infty, {a})"
        elif style == 3:
            gold, pred = rf"\{{{a}, {b}\}}", rf"\{{{b},{a}\}}" if right else rf"\{{{a}, {b + 1}\}}"
        elif style == 4:
            gold, pred = str(a), f"x = {a}" if right else f"x = {a + 1}"
        elif style == 5:
            gold, pred = rf"\frac{{{a}}}{{{4}}}", str(a / 4) if right else str(a / 4 + 0.1)
        else:
            gold, pred = rf"{a}x + {b}", rf"{b} + {a}x" if right else rf"{a}x - {b}"
        jobs.append(("math", gold, f"Thinking done. The final answer is $\\boxed{{{pred}}}$.", 4))
    return jobs


def _grade_in_fresh_process(count: int, workers: int, results) -> None:
    # A fresh interpreter per measurement: sympy and math-verify cache parsed expressions,
    # so a warm parent would flatter whichever path ran second.
    jobs = math_answers(count)
    t0 = time.perf_counter()
    verdicts = grade_many(jobs, workers=workers)  # includes starting the pool, as every caller pays it
    results.put((time.perf_counter() - t0, [(v.extracted, v.correct) for v in verdicts]))


def _timed(count: int, workers: int) -> tuple[float, list]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_grade_in_fresh_process, args=(count, workers, results))
    proc.start()
    out = results.get()
    proc.join()
    return out


def bench_grading(count: int, workers: int, rounds: int) -> dict:
    """Best of `rounds` alternating runs each (the machine's cores may be shared)."""
    single_s, pool_s = [], []
    for _ in range(rounds):
        t_single, single = _timed(count, 0)
        t_pool, pooled = _timed(count, workers)
        assert pooled == single, "process pool and single-threaded verdicts differ"
        single_s.append(t_single)
        pool_s.append(t_pool)
    return {
        "answers": count,
        "workers": workers,
        "rounds": rounds,
        "correct": sum(c for _, c in single),
        "single_items_per_s": count / min(single_s),
        "pool_items_per_s": count / min(pool_s),
        "speedup": min(single_s) / min(pool_s),
    }


def _instant_server(port: int) -> None:
    """An OpenAI-compatible chat endpoint that answers at once (no model)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    reply = {
        "id": "x",
        "object": "chat.completion",
        "model": "instant",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "\\boxed{42}", "reasoning_content": "ok"},
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": 6, "completion_tokens_details": {"reasoning_tokens": 1}},
    }

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        return reply

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _wait_up(url: str) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.post(f"{url}/v1/chat/completions", json={})
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"instant server at {url} did not start")


async def _raw(url: str, bodies: list[dict], concurrency: int) -> float:
    import httpx

    queue = iter(bodies)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=None)) as client:

        async def worker():
            for body in queue:
                r = await client.post(f"{url}/v1/chat/completions", json=body)
                r.raise_for_status()
                r.json()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


async def _swept(url: str, bench: Benchmark, setting: BudgetSetting, concurrency: int, out: Path) -> float:
    target = HTTPTarget(url, model="instant")
    try:
        t0 = time.perf_counter()
        await Sweep(target, [bench], [setting], SweepConfig(concurrency=concurrency), out, progress=False).run()
        return time.perf_counter() - t0
    finally:
        await target.aclose()


def bench_sweep(requests: int, concurrency: int, rounds: int) -> dict:
    """Median of `rounds` alternating raw/sweep runs over the same requests."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = multiprocessing.get_context("spawn").Process(target=_instant_server, args=(port,), daemon=True)
    server.start()
    items = tuple(BenchmarkItem(f"q{i}", f"Compute {i} + 42.", "42", "integer") for i in range(requests))
    bench = Benchmark("synthetic", "generated", items)
    setting = BudgetSetting(max_thinking_tokens=256)
    bodies = [
        {
            "model": "instant",
            "messages": [{"role": "user", "content": it.prompt}],
            "temperature": 0.0,
            "n": 1,
            "seed": i,
            **setting.request_fields(),
        }
        for i, it in enumerate(items)
    ]
    raw_s, sweep_s = [], []
    try:
        asyncio.run(_wait_up(url))
        asyncio.run(_raw(url, bodies[: min(200, requests)], concurrency))  # warm-up
        for _ in range(rounds):
            raw_s.append(asyncio.run(_raw(url, bodies, concurrency)))
            with tempfile.TemporaryDirectory() as tmp:
                sweep_s.append(asyncio.run(_swept(url, bench, setting, concurrency, Path(tmp))))
                recorded = sum(1 for _ in (Path(tmp) / "records" / "synthetic" / f"{setting.key}.jsonl").open())
            assert recorded == requests
    finally:
        server.terminate()
        server.join(5)
    t_raw, t_sweep = statistics.median(raw_s), statistics.median(sweep_s)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "raw_req_per_s": requests / t_raw,
        "sweep_req_per_s": requests / t_sweep,
        "throughput_ratio": t_raw / t_sweep,
        "overhead_ms_per_request": 1000 * (t_sweep - t_raw) / requests,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=5000)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--grading-rounds", type=int, default=2)
    p.add_argument("--sweep-rounds", type=int, default=5)
    args = p.parse_args()
    g = bench_grading(args.answers, args.workers, args.grading_rounds)
    print(
        f"grading {g['answers']} MATH-style answers ({g['correct']} correct): "
        f"single-threaded {g['single_items_per_s']:.0f} items/s, process pool x{g['workers']} "
        f"{g['pool_items_per_s']:.0f} items/s (pool start-up included) -> {g['speedup']:.2f}x"
    )
    s = bench_sweep(args.requests, args.concurrency, args.sweep_rounds)
    print(
        f"sweep overhead, {s['requests']} requests at concurrency {s['concurrency']} to an instant server: "
        f"raw {s['raw_req_per_s']:.0f} req/s, sweep {s['sweep_req_per_s']:.0f} req/s -> ratio "
        f"{s['throughput_ratio']:.2f} ({s['overhead_ms_per_request']:.2f} ms per request)"
    )
    print(json.dumps({"grading": g, "sweep": s}, indent=2))


if __name__ == "__main__":
    main()
