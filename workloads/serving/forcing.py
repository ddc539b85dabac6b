"""Budget forcing one token at a time, inside a single engine request.

The resubmitting controller (budget.py) ends an engine request whenever the model tries
to end its thinking and submits the grown context again. Here the engine keeps the one
request and asks this state machine, before every sampling step, what it may sample:
- while thinking, the model "tries to end" when the token it would sample is one of
  `think_stop`; that token is never sampled: the ignore string (an extension) or the
  closing (end-thinking delimiter [+ final answer prefix]) is forced in its place, one
  token per step, exactly the tokens the resubmitting controller appends;
- at `max_thinking_tokens` (or `max_tokens`) thinking tokens the closing is forced, with
  the answer prefix when max_thinking_tokens (not max_tokens) is what ended thinking;
- the answer is the model's until end of turn or max_tokens (the engine's own stops).
Pure Python over token ids, so the engine side (engines/vllm_forcing.py) stays thin.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Sequence

THINKING, CLOSING, ANSWER = "thinking", "closing", "answer"


@dataclass(frozen=True)
class ForcingPlan:
    """Everything the engine needs to force one request's budget, built once per request
    (plain values: it travels to the engine process inside the request's sampling
    parameters). Sampling (temperature, top_p, seed) is not in it: that differs per choice
    and the engine has it already."""

    think_stop: tuple[int, ...]
    closing: tuple[int, ...]  # when the model ends thinking itself
    forced_closing: tuple[int, ...]  # when max_thinking_tokens ends it: closing + final_answer_prefix
    ignore_string_ids: tuple[int, ...]
    max_tokens: int  # the whole completion, so thinking too
    max_thinking_tokens: int | None = None
    min_thinking_tokens: int = 0
    num_ignore: int = 0

    def __post_init__(self) -> None:
        if not self.closing or not self.forced_closing:
            raise ValueError("a forcing plan needs a closing (the end-of-thinking delimiter)")
        if set(self.ignore_string_ids) & set(self.think_stop):
            raise ValueError("ignore_string must not contain the end-of-thinking delimiter or end of turn")
        if min(self.max_tokens, self.max_thinking_tokens or 0, self.min_thinking_tokens, self.num_ignore) < 0:
            raise ValueError("max_tokens, max_thinking_tokens, min_thinking_tokens and num_ignore must be >= 0")

    def thinking_room(self, thinking: int) -> int:
        """Thinking tokens still allowed after `thinking`: max_tokens bounds thinking too."""
        if self.max_thinking_tokens is None:
            return self.max_tokens - thinking
        return min(self.max_thinking_tokens, self.max_tokens) - thinking

    def extension(self, thinking: int, extensions: int) -> tuple[int, ...]:
        """What replaces the model's attempt to end thinking: the ignore string, cut to the
        room left, while more thinking is wanted; () means close instead."""
        wants_more = thinking < self.min_thinking_tokens or extensions < self.num_ignore
        room = self.thinking_room(thinking)
        return self.ignore_string_ids[:room] if wants_more and room > 0 else ()

    def reached_max_thinking(self, thinking: int) -> bool:
        """Thinking that stops at `thinking` tokens was ended by max_thinking_tokens."""
        return self.max_thinking_tokens is not None and thinking >= self.max_thinking_tokens

    def closing_for(self, forced: bool) -> tuple[int, ...]:
        return self.forced_closing if forced else self.closing

    def as_args(self) -> dict:
        return asdict(self)

    @classmethod
    def from_args(cls, args: dict) -> "ForcingPlan":
        tuples = ("think_stop", "closing", "forced_closing", "ignore_string_ids")
        # Values as they came over the wire (JSON lists where the plan holds tuples).
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in args.items()}
        return cls(**fields)


class ForcingState:
    """One request's position in the plan: phase, thinking tokens, extensions, forced queue."""

    def __init__(self, plan: ForcingPlan):
        self.plan = plan
        self.phase = THINKING
        self.thinking = 0  # model and extension tokens inside thinking
        self.extensions = 0
        self.forced_end = False
        self.queue: deque[int] = deque()  # tokens still to force, in order
        self.seen = 0  # output tokens accounted for

    def advance(self, output_ids: Sequence[int]) -> None:
        """Account for the tokens sampled since the last call (the engine's output list)."""
        while self.seen < len(output_ids):
            if output_ids[self.seen] < 0:
                break  # a placeholder for a token still being copied (async scheduling)
            self.seen += 1
            if self.queue:
                self.queue.popleft()  # a forced token: nothing else could be sampled
            if self.phase == THINKING:
                self.thinking += 1
            elif self.phase == CLOSING and not self.queue:
                self.phase = ANSWER

    def forced(self) -> int | None:
        """The token this step must sample, or None when the model chooses."""
        if not self.queue and self.phase == THINKING and self.plan.thinking_room(self.thinking) <= 0:
            self._close(forced=self.plan.reached_max_thinking(self.thinking))
        return self.queue[0] if self.queue else None

    @property
    def deciding(self) -> bool:
        """True when the model chooses a thinking token: ending is decided by end_attempt."""
        return self.phase == THINKING and not self.queue

    def end_choice(self) -> tuple[int, bool]:
        """What end_attempt would force now, deciding nothing: the token, and whether it
        starts an extension (else it starts the closing)."""
        extension = self.plan.extension(self.thinking, self.extensions)
        return (extension or self.plan.closing_for(False))[0], bool(extension)

    def end_attempt(self) -> int:
        """The model would end its thinking now: extend it or close it. Returns the token to
        force in place of the stop token."""
        extension = self.plan.extension(self.thinking, self.extensions)
        if extension:
            self.queue.extend(extension)  # every extension token counts in the budget
            self.extensions += 1
        else:
            self._close(forced=False)
        return self.queue[0]

    def _close(self, forced: bool) -> None:
        self.phase, self.forced_end = CLOSING, forced
        self.queue.extend(self.plan.closing_for(forced))
