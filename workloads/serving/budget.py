"""Budget forcing (s1 §3) as a controller over engine steps, per request.

Semantics, all in tokens of the served tokenizer:
- thinking never exceeds `max_thinking_tokens`; every "Wait" extension counts against it
  (the reference code reset the budget per round: fixed here, the budget is the total);
- when the model tries to end thinking before `min_thinking_tokens`, or while fewer than
  `num_ignore` extensions were used, the end is suppressed and `ignore_string` appended;
- at `max_thinking_tokens` the end-of-thinking delimiter is forced, then `final_answer_prefix`;
- the answer runs until end of turn or until `max_tokens` completion tokens in total.
The request's ForcingPlan (its budget in token ids) is built once, by `plan`, and shared
by its choices. Engines that force budgets themselves (engines.base.ForcingEngine, see
forcing.py) get one request per turn and this controller only splits the stream into
thinking / closing / answer. For the others each step re-submits the whole context (with
prefix caching only the new tokens are computed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from thinkube.workloads.formats.chat import ChatFormat
from thinkube.workloads.serving.engines.base import Engine, ForcingEngine, StepParams
from thinkube.workloads.serving.forcing import ForcingPlan
from thinkube.workloads.serving.settings import BudgetSettings

# Event kinds: model thinking, an extension the controller appended inside thinking, the
# closing the controller appended (delimiter [+ answer prefix]), model answer.
THINKING, EXTENSION, CLOSE, ANSWER = "thinking", "extension", "close", "answer"


@dataclass(frozen=True)
class Delimiters:
    """The token ids budget forcing acts on, derived once per model and chat format."""

    think_stop: tuple[int, ...]  # a step in the thinking phase stops at any of these
    end_of_turn: tuple[int, ...]  # ends the answer (and the whole turn)
    end_thinking: tuple[int, ...]  # ends thinking the server cuts: "\n" + the answer delimiter + "\n"
    own_closing: tuple[int, ...]  # ends thinking the model ends itself: its own text already ends the line
    vocab_size: int  # ids at or above this are padded embedding rows: never re-fed
    end_marker: int  # the delimiter's first token: never a thinking token, so it marks the closing

    @classmethod
    def from_tokenizer(cls, tokenizer, fmt: ChatFormat) -> "Delimiters":
        end = fmt.end_of_thinking
        first = tokenizer.encode(end, add_special_tokens=False)
        if not first:
            raise ValueError(f"chat format end-of-thinking delimiter {end!r} encodes to no tokens")
        end_of_turn = {tokenizer.convert_tokens_to_ids(fmt.im_end)}
        if tokenizer.eos_token_id is not None:
            end_of_turn.add(tokenizer.eos_token_id)
        # The model signals "end of thinking" by emitting the delimiter's first token (for s1
        # that is <|im_start|>, for tag models </think>); stopping there lets us decide.
        cut = tuple(tokenizer.encode("\n" + end + "\n", add_special_tokens=False))
        # Training text is "{thinking}\n{delimiter}": a model ending its thinking has written
        # that newline and then reaches for the delimiter, so the closing starts at the
        # delimiter (a second newline would be text it never saw). Where the delimiter
        # does not start its own token, the newline-led closing is the only safe one.
        own = tuple(tokenizer.encode(end + "\n", add_special_tokens=False))
        return cls(
            think_stop=tuple(sorted({first[0], *end_of_turn})),
            end_of_turn=tuple(sorted(end_of_turn)),
            end_thinking=cut,
            own_closing=own if own and own[0] == first[0] else cut,
            vocab_size=len(tokenizer),
            end_marker=first[0],
        )

    @property
    def marker_offset(self) -> int | None:
        """Where the marker sits in end_thinking; None when the tokenizer merged it away."""
        return self.end_thinking.index(self.end_marker) if self.end_marker in self.end_thinking else None


@dataclass
class Event:
    kind: str
    token_ids: list[int]


@dataclass
class Outcome:
    thinking_tokens: int = 0  # thinking actually produced, extensions included
    answer_tokens: int = 0
    closing_tokens: int = 0  # the delimiter [+ answer prefix] appended to end thinking
    extensions: int = 0
    forced_end: bool = False  # max_thinking_tokens, not the model, ended thinking
    answer_prefix: str = ""  # final_answer_prefix, when a forced end added it
    finish_reason: str = "stop"
    dropped_out_of_vocab: int = 0
    cached_prompt_tokens: int = 0
    submitted_tokens: int = 0  # prompt tokens handed to the engine, all steps together
    steps: int = 0


def sanitize(ids: list[int], vocab_size: int) -> tuple[list[int], int]:
    """Drop ids the tokenizer cannot represent before they are fed back (a known crash of
    the reference code: padded embedding rows are valid logits but invalid prompt ids)."""
    kept = [i for i in ids if 0 <= i < vocab_size]
    return kept, len(ids) - len(kept)


class BudgetForcing:
    def __init__(self, engine: Engine, delimiters: Delimiters):
        self.engine = engine
        self.d = delimiters
        # The splitter finds the closing by its marker: a tokenizer that merged the marker
        # away leaves the resubmitting controller.
        offset = delimiters.marker_offset
        self._forcing: tuple[ForcingEngine, int] | None = (
            (engine, offset)
            if isinstance(engine, ForcingEngine) and engine.forces_budget and offset is not None
            else None
        )
        self.in_engine = self._forcing is not None

    def _enc(self, text: str) -> list[int]:
        tokenizer = self.engine.tokenizer
        assert tokenizer is not None  # the server builds this controller once the engine has started
        return tokenizer.encode(text, add_special_tokens=False)

    def plan(self, s: BudgetSettings) -> ForcingPlan:
        """The request's budget in token ids. Thinking ends with the delimiter, followed by
        final_answer_prefix when max_thinking_tokens forced the end. Raises ValueError for
        an ignore_string that the plan refuses."""
        prefix = tuple(self._enc(s.final_answer_prefix)) if s.final_answer_prefix else ()
        return ForcingPlan(
            think_stop=self.d.think_stop,
            closing=self.d.own_closing,
            forced_closing=self.d.end_thinking + prefix,
            ignore_string_ids=tuple(self._enc(s.ignore_string)) if s.ignore_string else (),
            max_tokens=s.max_tokens,
            max_thinking_tokens=s.max_thinking_tokens,
            min_thinking_tokens=s.min_thinking_tokens,
            num_ignore=s.num_ignore,
        )

    def run(
        self, prompt_ids: list[int], s: BudgetSettings, plan: ForcingPlan, outcome: Outcome
    ) -> AsyncIterator[Event]:
        """Yield one choice's events in order: `s` is the choice's settings (sampling),
        `plan` the request's, from plan(). `outcome` is filled in as the choice proceeds."""
        if self._forcing is None:
            return self._resubmit(prompt_ids, s, plan, outcome)
        return self._run_in_engine(*self._forcing, prompt_ids, s, plan, outcome)

    async def _run_in_engine(
        self,
        engine: ForcingEngine,
        marker_offset: int,
        prompt_ids: list[int],
        s: BudgetSettings,
        plan: ForcingPlan,
        outcome: Outcome,
    ) -> AsyncIterator[Event]:
        split = _Splitter(self.d.end_marker, marker_offset, plan, s, outcome)
        params = StepParams(
            max_tokens=plan.max_tokens,
            stop_token_ids=self.d.end_of_turn,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=s.seed,
        )
        outcome.steps, outcome.submitted_tokens = 1, len(prompt_ids)
        async for chunk in engine.stream_forced(prompt_ids, plan, params):
            for ev in split.feed(self._received(chunk, outcome)):
                yield ev
            if chunk.finish_reason:
                outcome.finish_reason = chunk.finish_reason
                outcome.extensions = chunk.extensions or 0
                for ev in split.finish():
                    yield ev

    async def _resubmit(
        self, prompt_ids: list[int], s: BudgetSettings, plan: ForcingPlan, outcome: Outcome
    ) -> AsyncIterator[Event]:
        context = list(prompt_ids)

        # Thinking phase.
        while True:
            left = plan.thinking_room(outcome.thinking_tokens)
            if left <= 0:
                outcome.forced_end = plan.reached_max_thinking(outcome.thinking_tokens)
                break
            ids, reason = [], None
            async for ids_chunk, reason in self._step(context, left, self.d.think_stop, s, outcome):
                ids += ids_chunk
                if ids_chunk:
                    yield Event(THINKING, ids_chunk)
            context += ids
            outcome.thinking_tokens += len(ids)
            if reason == "length":
                continue  # the loop head decides: forced end at max_thinking_tokens
            # Any stop (the delimiter or an end of turn) is the model trying to end thinking.
            extension = list(plan.extension(outcome.thinking_tokens, outcome.extensions))
            if extension:
                context += extension
                outcome.thinking_tokens += len(extension)
                outcome.extensions += 1
                yield Event(EXTENSION, extension)
                continue
            break

        closing = _end_thinking(plan, s, outcome)
        context += closing
        yield Event(CLOSE, closing)

        # Answer phase.
        left = plan.max_tokens - outcome.thinking_tokens - len(closing)
        if left <= 0:
            outcome.finish_reason = "length"
            return
        async for ids_chunk, reason in self._step(context, left, self.d.end_of_turn, s, outcome):
            outcome.answer_tokens += len(ids_chunk)
            if ids_chunk:
                yield Event(ANSWER, ids_chunk)
        outcome.finish_reason = reason or "stop"

    async def _step(self, context, max_tokens, stop_ids, s: BudgetSettings, outcome: Outcome):
        params = StepParams(
            max_tokens=max_tokens,
            stop_token_ids=stop_ids,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=None if s.seed is None else s.seed + outcome.steps,
        )
        outcome.steps += 1
        outcome.submitted_tokens += len(context)
        async for chunk in self.engine.stream(context, params):
            yield self._received(chunk, outcome), chunk.finish_reason

    def _received(self, chunk, outcome: Outcome) -> list[int]:
        """The chunk's ids the tokenizer can represent; counts what was dropped or cached."""
        ids, dropped = sanitize(chunk.token_ids, self.d.vocab_size)
        outcome.dropped_out_of_vocab += dropped
        outcome.cached_prompt_tokens += chunk.cached_prompt_tokens or 0
        return ids


def _end_thinking(plan: ForcingPlan, s: BudgetSettings, outcome: Outcome) -> list[int]:
    """The closing for how thinking ended (outcome.forced_end): the delimiter, then
    final_answer_prefix when max_thinking_tokens forced the end."""
    if outcome.forced_end and s.final_answer_prefix:
        outcome.answer_prefix = s.final_answer_prefix
    closing = list(plan.closing_for(outcome.forced_end))
    outcome.closing_tokens = len(closing)
    return closing


class _Splitter:
    """Splits one in-engine budget-forced stream into the controller's events. The engine
    never lets the model sample the delimiter's first token while thinking, so its first
    appearance marks the closing; the `offset` tokens before it are held back until it is
    clear whether they belong to thinking or to the closing."""

    def __init__(self, marker: int, offset: int, plan: ForcingPlan, s: BudgetSettings, outcome: Outcome):
        self.marker, self.offset, self.plan, self.s, self.o = marker, offset, plan, s, outcome
        self.held: list[int] = []
        self.closing_left: int | None = None  # None while thinking

    def feed(self, ids: list[int]) -> list[Event]:
        # Whole slices, not token by token: this runs for every chunk of every request.
        events: list[Event] = []
        start = 0
        if self.closing_left is None:
            at = ids.index(self.marker) if self.marker in ids else len(ids)
            self.held += ids[:at]
            cut = len(self.held) - self.offset
            if cut > 0:
                self._emit(events, THINKING, self.held[:cut])
                self.held = self.held[cut:]
            if at == len(ids):
                return events
            if not self.plan.reached_max_thinking(self.o.thinking_tokens + len(self.held) - self.offset):
                # The model ended its thinking: what was held back is its own, and its
                # closing starts at the marker.
                self._emit(events, THINKING, self.held)
                self.held = []
            events.append(self._close())  # the marker: any held tokens open the closing
            self.closing_left = len(events[-1].token_ids) - len(self.held) - 1
            self.held, start = [], at + 1
        skip = min(self.closing_left, len(ids) - start)
        self.closing_left -= skip
        self._emit(events, ANSWER, ids[start + skip :])
        return events

    def finish(self) -> list[Event]:
        """At the end of the stream: still thinking means max_tokens ran out; close like the
        resubmitting controller does."""
        if self.closing_left is not None:
            return []
        events: list[Event] = []
        self._emit(events, THINKING, self.held)
        events.append(self._close())
        return events

    def _close(self) -> Event:
        self.o.forced_end = self.plan.reached_max_thinking(self.o.thinking_tokens)
        return Event(CLOSE, _end_thinking(self.plan, self.s, self.o))

    def _emit(self, events: list[Event], kind: str, ids: list[int]) -> None:
        if not ids:
            return
        if kind == THINKING:
            self.o.thinking_tokens += len(ids)
        else:
            self.o.answer_tokens += len(ids)
        events.append(Event(kind, ids))
