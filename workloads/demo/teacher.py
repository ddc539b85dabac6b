"""The demo's synthetic teacher, served by `thinkube serve --engine demo-teacher`.

A program, not a model: it answers the demo's questions the way tasks.py says its teacher
thinks, token by token through the same server and OpenAI-compatible API as a model, so
distillation calls it exactly as it would call a hosted teacher. Its traces end unchecked or
checked as tasks.py says; a "Wait" that budget forcing appends makes it check as well. A
question it cannot read makes it loop ("Hmm") until the call's max_tokens cuts it off: the
demo's planted teacher failures, which the quality stage drops.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from thinkube.api.stages.serve import EngineName
from thinkube.workloads.demo.tasks import WAIT, Problem
from thinkube.workloads.formats.chat import S1_FORMAT
from thinkube.workloads.serving.engines.base import StepChunk, StepParams

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ENGINE: EngineName = "demo-teacher"
USER_TURN, ASSISTANT_TURN = f"{S1_FORMAT.im_start}user\n", f"{S1_FORMAT.im_start}assistant\n"
LOOP = "Hmm\n"
CHUNK = 16  # tokens per streamed chunk


class SyntheticTeacher:
    def __init__(self, tokenizer_path: str, name: str):
        self.tokenizer_path, self.name = tokenizer_path, name
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.max_model_len = 4096

    async def start(self) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, self.tokenizer_path)

    def _remaining(self, prompt_ids: list[int]) -> Iterator[int]:
        """The rest of the teacher's assistant turn as token ids: the server resubmits the
        context (the turn so far and the delimiter it adds) after each step it handles."""
        fmt, tokenizer = S1_FORMAT, self.tokenizer
        assert tokenizer is not None  # start() loads it before the server takes requests
        text = tokenizer.decode(prompt_ids)
        assert isinstance(text, str)  # one sequence of ids decodes to one string
        head, _, written = text.rpartition(ASSISTANT_TURN)
        problem = Problem.parse(head.rpartition(USER_TURN)[2].split(fmt.im_end)[0])
        thinking, sep, answered = written.removeprefix(fmt.think_start + "\n").partition(fmt.end_of_thinking)
        if problem is None:
            loop = tokenizer.encode(LOOP, add_special_tokens=False)
            return itertools.cycle(loop)
        if sep:  # answering: the attempt, less what is already there
            checked = f"{WAIT}\n{problem.check()}" in thinking
            rest = (problem.attempt(checked) + fmt.im_end).removeprefix(answered.lstrip("\n"))
        else:
            # Each "Wait" already there, the teacher's own or forced by budget forcing, is
            # followed by a check, and a checked trace's answer is the checked one.
            checks = max(problem.checks, thinking.split("\n").count(WAIT))
            rest = problem.trace(checks) + "\n" + fmt.end_of_thinking + "\n" + problem.attempt(checks > 0) + fmt.im_end
            # Past what is written; where forced text (a "Wait") made it differ, without the gap.
            rest = rest[len(thinking) :] if rest.startswith(thinking) else rest[len(thinking) :].lstrip()
        return iter(tokenizer.encode(rest, add_special_tokens=False))

    async def stream(self, prompt_ids: list[int], params: StepParams) -> AsyncIterator[StepChunk]:
        stop, left = set(params.stop_token_ids), params.max_tokens
        ids = self._remaining(prompt_ids)
        while left > 0:
            chunk = list(itertools.islice(ids, min(CHUNK, left)))
            cut = next((i for i, t in enumerate(chunk) if t in stop), None)
            if cut is not None or not chunk:
                yield StepChunk(chunk[:cut] if cut is not None else [], "stop")
                return
            left -= len(chunk)
            yield StepChunk(chunk, "length" if left == 0 else None)
            await asyncio.sleep(0)  # let other requests' streams run
        if params.max_tokens == 0:
            yield StepChunk([], "length")

    async def close(self) -> None:
        self.tokenizer = None
