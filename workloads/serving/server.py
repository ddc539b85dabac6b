"""The model behind the HTTP endpoints: loads the engine, turns a parsed request into a
Generation (settings resolved, forcing plan built, once), and runs its choices."""

from __future__ import annotations

import asyncio
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Literal, NamedTuple

from thinkube.workloads.formats.chat import ChatFormat
from thinkube.workloads.serving.budget import ANSWER, CLOSE, BudgetForcing, Delimiters, Event, Outcome
from thinkube.workloads.serving.errors import ApiError
from thinkube.workloads.serving.forcing import ForcingPlan
from thinkube.workloads.serving.metrics import ServerMetrics
from thinkube.workloads.serving.protocol import BudgetFields
from thinkube.workloads.serving.settings import BudgetSettings

log = logging.getLogger(__name__)

DeltaField = Literal["reasoning_content", "content"]  # where a streamed text delta goes


@dataclass(frozen=True)
class ServerConfig:
    fmt: ChatFormat
    default_max_tokens: int = 4096  # when the request names none (still capped by the context)
    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrency: int = 256  # generations in flight; more requests wait
    defaults: dict | None = None  # budget defaults by request field name, for requests that omit them (operator args)


@dataclass(frozen=True)
class Generation:
    """One accepted request: its prompt, its settings and its forcing plan, shared by its n choices."""

    prompt_ids: list[int]
    settings: BudgetSettings
    plan: ForcingPlan
    n: int
    include_usage: bool


class Result(NamedTuple):
    """One choice, complete."""

    reasoning_content: str
    content: str
    outcome: Outcome


class Server:
    def __init__(self, engine, config: ServerConfig):
        self.engine, self.config = engine, config
        # What a request gets for each field it leaves out; unknown names fail at startup.
        self.defaults = BudgetSettings(max_tokens=config.default_max_tokens, **(config.defaults or {}))
        self.metrics = ServerMetrics()
        self.ready = False
        self.load_error: str | None = None
        self.forcing: BudgetForcing | None = None
        self._slots = asyncio.Semaphore(config.max_concurrency)

    async def load(self) -> None:
        try:
            await self.engine.start()
            self.forcing = BudgetForcing(self.engine, Delimiters.from_tokenizer(self.engine.tokenizer, self.config.fmt))
            self.ready = True
            log.info("model %s ready (context %d tokens)", self.engine.name, self.engine.max_model_len)
        except Exception as e:  # reported by /health; the liveness probe restarts the pod
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("model failed to load")

    # ------------------------------------------------------------- request -> generation

    def accept(self, req: BudgetFields, prompt: str) -> Generation:
        """The request as a Generation, or ApiError naming the field at fault."""
        forcing = self.forcing
        if not self.ready or forcing is None:  # load() builds the controller, then the server is ready
            raise ApiError(503, "model is still loading: retry when GET /health returns 200", type_="unavailable")
        if req.model != self.engine.name:
            raise ApiError(
                400,
                f"model {req.model!r} is not served here; available: [{self.engine.name!r}]",
                "model",
                "model_not_found",
            )
        prompt_ids = self.engine.tokenizer.encode(prompt, add_special_tokens=False)
        settings = req.resolve(self.defaults, len(prompt_ids), self.engine.max_model_len)
        try:
            plan = forcing.plan(settings)
        except ValueError as e:
            raise ApiError(400, f"{e}: choose another ignore_string", "ignore_string") from e
        self.metrics.prompt_tokens.inc(len(prompt_ids))
        return Generation(prompt_ids, settings, plan, req.n, req.include_usage)

    # ------------------------------------------------------------- generation

    @contextmanager
    def in_flight(self):
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self.metrics.in_flight.dec()

    async def complete(self, gen: Generation) -> list[Result]:
        """All choices, generated concurrently."""
        with self.in_flight():
            return await asyncio.gather(*(self._complete(gen, i) for i in range(gen.n)))

    async def _complete(self, gen: Generation, index: int) -> Result:
        thinking, answer, outcome = [], [], Outcome()
        async with self._slots:
            async for ev in self._run(gen, index, outcome):
                if ev.kind == ANSWER:
                    answer += ev.token_ids
                elif ev.kind != CLOSE:
                    thinking += ev.token_ids
        self.metrics.observe(outcome)
        return Result(self._decode(thinking).strip(), (outcome.answer_prefix + self._decode(answer)).strip(), outcome)

    async def stream(self, gen: Generation, index: int, outcome: Outcome) -> AsyncIterator[tuple[DeltaField, str]]:
        """Yield choice `index` as (field, text delta), field "reasoning_content" or "content"."""
        phase_ids: dict[str, list[int]] = {"reasoning_content": [], "content": []}
        sent: dict[str, str] = {"reasoning_content": "", "content": ""}
        async with self._slots:
            async for ev in self._run(gen, index, outcome):
                if ev.kind == CLOSE:
                    if outcome.answer_prefix:
                        yield "content", outcome.answer_prefix
                    continue
                key: DeltaField = "content" if ev.kind == ANSWER else "reasoning_content"
                phase_ids[key] += ev.token_ids
                text = self._decode(phase_ids[key])
                if text.endswith("\ufffd"):
                    continue  # half of a multi-byte character: wait for the rest
                delta, sent[key] = text[len(sent[key]) :], text
                if delta:
                    yield key, delta
        self.metrics.observe(outcome)

    def _run(self, gen: Generation, index: int, outcome: Outcome) -> AsyncIterator[Event]:
        """Choice `index`'s events: its own settings (seed), the request's plan."""
        assert self.forcing is not None  # a Generation comes from accept(), which needs it
        return self.forcing.run(gen.prompt_ids, gen.settings.for_choice(index), gen.plan, outcome)

    def _decode(self, ids: list[int]) -> str:
        return self.engine.tokenizer.decode(ids, skip_special_tokens=True)
