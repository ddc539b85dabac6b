"""The interface every generation engine implements: one streamed generation step over
token ids. Budget forcing (serving/budget.py) composes steps; engines know nothing of it,
except those that force budgets themselves (ForcingEngine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Protocol, runtime_checkable

from thinkube.workloads.serving.forcing import ForcingPlan

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class StepParams:
    max_tokens: int
    stop_token_ids: tuple[int, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class StepChunk:
    """New tokens of one step; the last chunk has `finish_reason` set.

    A stop token is never part of `token_ids`: the controller decides what follows a stop
    (suppress it, force the delimiter, or end the turn).
    """

    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length"
    cached_prompt_tokens: int | None = None  # prefix-cache hits, where the engine reports them
    extensions: int | None = None  # in-engine budget forcing: extensions applied (last chunk)


class Engine(Protocol):
    name: str  # the model name clients ask for
    tokenizer: PreTrainedTokenizerBase | None  # loaded by start()
    max_model_len: int

    async def start(self) -> None: ...

    def stream(self, prompt_ids: list[int], params: StepParams) -> AsyncIterator[StepChunk]: ...

    async def close(self) -> None: ...


@runtime_checkable
class ForcingEngine(Engine, Protocol):
    """An engine that can force budgets itself: one engine request per turn."""

    forces_budget: bool  # whether this instance does (the vLLM engine can be told not to)

    def stream_forced(
        self, prompt_ids: list[int], plan: ForcingPlan, params: StepParams
    ) -> AsyncIterator[StepChunk]: ...


def strip_stop(token_ids: list[int], stop_ids: tuple[int, ...], finish_reason: str | None) -> list[int]:
    """Engines may emit the stop token at the end of a finished step; drop it."""
    if finish_reason == "stop" and token_ids and token_ids[-1] in stop_ids:
        return token_ids[:-1]
    return token_ids
