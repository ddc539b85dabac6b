"""The s1 chat layout: prompts, training completions, and generations split back apart.

s1 keeps Qwen's chat template and writes the assistant turn as
`<|im_start|>think\\n{trace}\\n<|im_start|>answer\\n{answer}<|im_end|>` (no new tokens);
models trained with `<think>...</think>` use THINK_TAGS_FORMAT instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from thinkube.workloads.formats.records import S1Record

QWEN_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@dataclass(frozen=True)
class ChatFormat:
    im_start: str = "<|im_start|>"
    im_end: str = "<|im_end|>"
    think_start: str = "<|im_start|>think"
    answer_start: str = "<|im_start|>answer"
    think_end: str | None = None  # `</think>` style; then answer_start is ""
    system_prompt: str = QWEN_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        # One delimiter ends thinking; two would make budget forcing ambiguous.
        if self.think_end and self.answer_start:
            raise ValueError(
                "set think_end ('</think>' style, with answer_start='') or answer_start (s1 style), not both"
            )
        if not self.end_of_thinking:
            raise ValueError("a ChatFormat needs answer_start or think_end to mark the end of thinking")

    @property
    def end_of_thinking(self) -> str:
        """The string that ends thinking: budget forcing forces or suppresses exactly this."""
        return self.think_end or self.answer_start


S1_FORMAT = ChatFormat()
THINK_TAGS_FORMAT = ChatFormat(think_start="<think>", think_end="</think>", answer_start="")
# The names the CLIs and config files use for the formats.
CHAT_FORMATS = {"s1": S1_FORMAT, "think-tags": THINK_TAGS_FORMAT}


@dataclass(frozen=True)
class Completion:
    thinking: str
    answer: str
    finished_thinking: bool  # False: the end-of-thinking delimiter never came (truncated)


def render_messages(
    messages: list[Mapping[str, str]], fmt: ChatFormat = S1_FORMAT, *, open_thinking: bool = True
) -> str:
    """OpenAI-style messages in the Qwen chat template layout, the assistant turn opened
    (and thinking opened too, by default). A default system turn is added when none leads."""
    turns = list(messages)
    if not turns or turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": fmt.system_prompt})
    text = "".join(f"{fmt.im_start}{m['role']}\n{m['content']}{fmt.im_end}\n" for m in turns)
    text += f"{fmt.im_start}assistant\n"
    return text + fmt.think_start + "\n" if open_thinking else text


def render_prompt(question: str, fmt: ChatFormat = S1_FORMAT, system_prompt: str | None = None) -> str:
    """System and user turns, then the opened assistant turn (Qwen chat template layout)."""
    system = fmt.system_prompt if system_prompt is None else system_prompt
    return render_messages(
        [{"role": "system", "content": system}, {"role": "user", "content": question}], fmt, open_thinking=False
    )


def render_generation_prompt(question: str, fmt: ChatFormat = S1_FORMAT, system_prompt: str | None = None) -> str:
    """The prompt with thinking opened, so the model's first tokens are its reasoning."""
    return render_prompt(question, fmt, system_prompt) + fmt.think_start + "\n"


def render_completion(thinking: str, answer: str, fmt: ChatFormat = S1_FORMAT) -> str:
    """The assistant turn; training puts the loss on this part only."""
    return f"{fmt.think_start}\n{thinking}\n{fmt.end_of_thinking}\n{answer}{fmt.im_end}"


def render_training_example(
    record: S1Record | Mapping[str, Any],
    fmt: ChatFormat = S1_FORMAT,
    *,
    index: int | None = None,
    system_prompt: str | None = None,
) -> tuple[str, str]:
    """(prompt, completion) for SFT; the answer is the teacher's attempt text, kept as is."""
    get = record.get if isinstance(record, Mapping) else lambda k: getattr(record, k, None)
    question, thinking, attempt = get("question"), get("thinking"), get("attempt")
    if not (_filled(question) and _filled(thinking) and _filled(attempt)):
        missing = [
            k for k, v in (("question", question), ("thinking", thinking), ("attempt", attempt)) if not _filled(v)
        ]
        which = (
            f"record id={get('id')!r}"
            if get("id") is not None
            else f"record index {index}"
            if index is not None
            else "record"
        )
        raise ValueError(
            f"{which}: missing {', '.join(missing)}; s1 training needs a question, a thinking trace and an attempt"
        )
    return render_prompt(question, fmt, system_prompt), render_completion(thinking, attempt, fmt)


def _filled(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def split_completion(text: str, fmt: ChatFormat = S1_FORMAT) -> Completion:
    """Thinking and answer of an assistant turn or of a generation continuing the prompt.

    `text` may start with think_start or right after it. The FIRST end-of-thinking delimiter
    splits; the answer ends at im_end. Surrounding newlines of the thinking and whitespace
    around the answer are stripped, so render_completion(t, a) splits back to (t, a) for
    t and a without such edges.
    """
    body = text.removeprefix(fmt.think_start)
    thinking, found, rest = body.partition(fmt.end_of_thinking)
    if not found:
        return Completion(thinking=thinking.strip("\n"), answer="", finished_thinking=False)
    answer = rest.partition(fmt.im_end)[0]
    return Completion(thinking=thinking.strip("\n"), answer=answer.strip(), finished_thinking=True)
