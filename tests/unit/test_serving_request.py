"""A request's path to the engine: its fields resolved against the server's defaults, one
forcing plan per request, and the dispatch between engines that force budgets themselves
(engines.base.ForcingEngine) and those driven step by step."""

from __future__ import annotations

import asyncio

import pytest
from transformers import AutoTokenizer

from tests.support.patterned_model import patterned_model
from thinkube.workloads.formats.chat import S1_FORMAT
from thinkube.workloads.serving.budget import ANSWER, CLOSE, BudgetForcing, Delimiters, Outcome
from thinkube.workloads.serving.engines.base import ForcingEngine, StepChunk
from thinkube.workloads.serving.errors import ApiError
from thinkube.workloads.serving.protocol import ChatRequest, CompletionRequest
from thinkube.workloads.serving.server import Server, ServerConfig
from thinkube.workloads.serving.settings import SEED_STRIDE, BudgetSettings

DEFAULTS = BudgetSettings(max_tokens=100, max_thinking_tokens=8, num_ignore=1, ignore_string="Hmm")
Q = [{"role": "user", "content": "q"}]


def chat(**fields) -> ChatRequest:
    return ChatRequest.model_validate({"model": "pat", "messages": Q, **fields})


def resolve(req, prompt_tokens=10, context=256) -> BudgetSettings:
    return req.resolve(DEFAULTS, prompt_tokens, context)


# ----------------------------------------------------------------- resolve


def test_fields_the_request_leaves_out_take_the_server_defaults():
    assert resolve(chat()) == DEFAULTS


def test_fields_the_request_names_override_the_defaults():
    s = resolve(
        chat(
            max_thinking_tokens=4,
            num_ignore=0,
            ignore_string="Wait",
            final_answer_prefix="",
            temperature=0.5,
            top_p=0.9,
            seed=3,
            max_tokens=50,
        )
    )
    assert s == BudgetSettings(
        max_tokens=50,
        max_thinking_tokens=4,
        num_ignore=0,
        ignore_string="Wait",
        final_answer_prefix="",
        temperature=0.5,
        top_p=0.9,
        seed=3,
    )


def test_none_means_the_default():
    nulls = dict.fromkeys(
        (
            "max_thinking_tokens",
            "min_thinking_tokens",
            "num_ignore",
            "ignore_string",
            "final_answer_prefix",
            "temperature",
            "top_p",
            "seed",
            "max_tokens",
        )
    )
    assert resolve(chat(**nulls)) == DEFAULTS


def test_max_tokens_is_the_default_capped_by_the_room_the_prompt_leaves():
    assert resolve(chat(), prompt_tokens=200, context=256).max_tokens == 56
    assert resolve(chat(max_completion_tokens=30, max_tokens=40)).max_tokens == 30


@pytest.mark.parametrize(
    "req, prompt_tokens, param",
    [
        (chat(max_tokens=300), 10, "max_tokens"),
        (chat(), 256, "messages"),
        (CompletionRequest(model="pat", prompt="p"), 300, "prompt"),
        (chat(min_thinking_tokens=9), 10, "min_thinking_tokens"),  # against the server's max_thinking_tokens
        (chat(ignore_string=""), 10, "ignore_string"),  # the server's num_ignore asks for an extension
    ],
)
def test_resolve_refuses_with_the_field_at_fault(req, prompt_tokens, param):
    with pytest.raises(ApiError) as e:
        resolve(req, prompt_tokens=prompt_tokens)
    assert (e.value.status, e.value.param) == (400, param) and param in e.value.message


def test_each_choice_has_its_own_seed():
    s = resolve(chat(seed=5))
    assert [s.for_choice(i).seed for i in range(3)] == [5, 5 + SEED_STRIDE, 5 + 2 * SEED_STRIDE]
    assert resolve(chat()).for_choice(2).seed is None


# ----------------------------------------------------------------- engine dispatch


class ScriptedEngine:
    """Thinks "one two", tries to end its thinking, answers "Answer: 7": one engine step
    per phase, the way the resubmitting controller drives an engine."""

    name, max_model_len = "pat", 256

    def __init__(self):
        self.tokenizer = AutoTokenizer.from_pretrained(patterned_model())
        self.marker = self.tokenizer.encode(S1_FORMAT.end_of_thinking, add_special_tokens=False)[0]
        self.thinking = self.tokenizer.encode(" one two", add_special_tokens=False)
        self.answer = self.tokenizer.encode("Answer: 7", add_special_tokens=False)
        self.calls: list[tuple] = []

    async def start(self) -> None:
        pass

    async def stream(self, prompt_ids, params):
        self.calls.append(("stream", params.seed))
        yield StepChunk(self.thinking if self.marker in params.stop_token_ids else self.answer, "stop")

    async def close(self) -> None:
        pass


class ForcingScriptedEngine(ScriptedEngine):
    """The same turn as one forced engine request: thinking, the closing, the answer."""

    def __init__(self, forces_budget: bool = True):
        super().__init__()
        self.forces_budget = forces_budget

    async def stream_forced(self, prompt_ids, plan, params):
        self.calls.append(("stream_forced", params.seed, plan))
        yield StepChunk([*self.thinking, *plan.closing, *self.answer], "stop", extensions=0)


def turn(engine) -> tuple[BudgetForcing, Outcome, list]:
    forcing = BudgetForcing(engine, Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT))
    settings = BudgetSettings(max_tokens=50)
    outcome = Outcome()

    async def go():
        return [ev async for ev in forcing.run([1, 2], settings, forcing.plan(settings), outcome)]

    return forcing, outcome, asyncio.run(go())


@pytest.mark.parametrize(
    "make, in_engine",
    [
        (ForcingScriptedEngine, True),
        (lambda: ForcingScriptedEngine(forces_budget=False), False),  # the vLLM engine told to resubmit
        (ScriptedEngine, False),
    ],
)
def test_engines_that_force_budgets_get_one_request_per_turn(make, in_engine):
    engine = make()
    assert isinstance(engine, ForcingEngine) == hasattr(engine, "stream_forced")
    forcing, outcome, events = turn(engine)
    assert forcing.in_engine == in_engine
    assert [c[0] for c in engine.calls] == (["stream_forced"] if in_engine else ["stream", "stream"])
    # Either way the same turn comes out of the controller.
    assert [e.kind for e in events][-2:] == [CLOSE, ANSWER]
    assert (outcome.thinking_tokens, outcome.answer_tokens) == (len(engine.thinking), len(engine.answer))
    assert not outcome.forced_end


def test_a_request_builds_one_plan_for_all_its_choices():
    engine = ForcingScriptedEngine()
    server = Server(engine, ServerConfig(fmt=S1_FORMAT, defaults={"max_thinking_tokens": 8}))
    asyncio.run(server.load())
    gen = server.accept(chat(n=3, seed=5), "<|im_start|>user\nq<|im_end|>\n")
    assert gen.plan.max_thinking_tokens == 8
    results = asyncio.run(server.complete(gen))
    assert [r.content for r in results] == ["Answer: 7"] * 3
    assert [c[1] for c in engine.calls] == [5, 5 + SEED_STRIDE, 5 + 2 * SEED_STRIDE]
    assert all(c[2] is gen.plan for c in engine.calls)  # built once, shared by the choices


def test_unknown_server_defaults_fail_at_startup():
    with pytest.raises(TypeError):
        Server(ScriptedEngine(), ServerConfig(fmt=S1_FORMAT, defaults={"max_thinking": 8}))
