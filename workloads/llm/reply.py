"""The one reading of a chat completion: thinking, answer, finish reason and token usage."""

from __future__ import annotations

from dataclasses import dataclass

from openai.types.chat import ChatCompletion

from thinkube.workloads.formats import ChatFormat, split_completion


class LLMError(RuntimeError):
    """An endpoint refused a call, kept failing it, or answered without a reply; the message
    carries the server's own text, which names the problem (say, a budget field out of range)."""


@dataclass(frozen=True)
class ChatReply:
    """One chat completion's first choice."""

    thinking: str | None  # None: no reasoning field and no chat format to split the content with
    content: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None


def parse_reply(completion: ChatCompletion, where: str, chat_format: ChatFormat | None = None) -> ChatReply:
    """The thinking comes from `reasoning_content` (vLLM's reasoning parsers, Thinkube) or
    `reasoning` (newer servers); failing both, from the content split with `chat_format`.

    The SDK builds replies without validating them, so a field the server left out reads as
    None, and the reasoning fields, which are not in its schema, are extra attributes.
    """
    choices = getattr(completion, "choices", None)
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = getattr(choice, "message", None)
    if message is None:
        raw = completion.to_dict() if hasattr(completion, "to_dict") else completion  # as the server sent it
        raise LLMError(f"{where}: reply without choices[0].message: {str(raw)[:300]}")
    content = getattr(message, "content", None) or ""
    thinking = getattr(message, "reasoning_content", None)
    if thinking is None:
        thinking = getattr(message, "reasoning", None)
    if thinking is None and chat_format is not None:
        split = split_completion(content, chat_format)
        thinking, content = split.thinking, split.answer if split.finished_thinking else ""
    usage = getattr(completion, "usage", None)
    details = getattr(usage, "completion_tokens_details", None)
    return ChatReply(
        thinking,
        content,
        getattr(choice, "finish_reason", None),
        getattr(usage, "prompt_tokens", None),
        getattr(usage, "completion_tokens", None),
        getattr(details, "reasoning_tokens", None),
    )
