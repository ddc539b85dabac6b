"""OpenAI-compatible response bodies, with the budget-forcing additions: `reasoning_content`
beside the answer, `budget` per choice, `completion_tokens_details.reasoning_tokens`."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import BaseModel, model_serializer

from thinkube.workloads.serving.budget import Outcome
from thinkube.workloads.serving.server import DeltaField, Result


class WireModel(BaseModel):
    """A body on the wire: a field left at None is not sent, as OpenAI leaves out what does
    not apply, except the fields in `nullable`, which OpenAI sends as null."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None or k in self.nullable}


class BudgetInfo(WireModel):
    thinking_tokens: int
    answer_tokens: int
    extensions: int
    forced_end: bool

    @classmethod
    def of(cls, o: Outcome) -> BudgetInfo:
        return cls(
            thinking_tokens=o.thinking_tokens,
            answer_tokens=o.answer_tokens,
            extensions=o.extensions,
            forced_end=o.forced_end,
        )


class CompletionTokensDetails(WireModel):
    reasoning_tokens: int


class Usage(WireModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails

    @classmethod
    def of(cls, prompt_tokens: int, outcomes: list[Outcome]) -> Usage:
        completion = sum(o.thinking_tokens + o.answer_tokens for o in outcomes)
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            total_tokens=prompt_tokens + completion,
            completion_tokens_details=CompletionTokensDetails(
                reasoning_tokens=sum(o.thinking_tokens for o in outcomes)
            ),
        )


class Head(WireModel):
    """What every completion body and chunk of one request starts with."""

    id: str
    created: int
    model: str


class Choice(WireModel):
    index: int
    finish_reason: str | None = None
    budget: BudgetInfo | None = None  # on the choice's last body or chunk

    nullable: ClassVar[frozenset[str]] = frozenset({"finish_reason"})

    @classmethod
    def last(cls, index: int, o: Outcome, **body) -> Self:
        """The choice's last body or chunk: how it finished, and its budget."""
        return cls(index=index, finish_reason=o.finish_reason, budget=BudgetInfo.of(o), **body)


# ----------------------------------------------------------------- /v1/chat/completions


class AssistantMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str


class ChatChoice(Choice):
    message: AssistantMessage

    @classmethod
    def of(cls, index: int, r: Result) -> ChatChoice:
        return cls.last(
            index, r.outcome, message=AssistantMessage(content=r.content, reasoning_content=r.reasoning_content)
        )


class ChatCompletion(Head):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(WireModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChatChunkChoice(Choice):
    delta: ChatDelta


class ChatCompletionChunk(Head):
    """A streamed body; the class methods build one choice's chunks from the request's head
    (Head's fields)."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
    usage: Usage | None = None  # only on the last chunk, when stream_options.include_usage

    @classmethod
    def opening(cls, head: dict, index: int) -> list[Self]:
        return [cls(**head, choices=[ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])]

    @classmethod
    def text(cls, head: dict, index: int, field: DeltaField, delta: str) -> Self:
        part = ChatDelta(content=delta) if field == "content" else ChatDelta(reasoning_content=delta)
        return cls(**head, choices=[ChatChunkChoice(index=index, delta=part)])

    @classmethod
    def final(cls, head: dict, index: int, o: Outcome) -> Self:
        return cls(**head, choices=[ChatChunkChoice.last(index, o, delta=ChatDelta())])


# ----------------------------------------------------------------- /v1/completions


class CompletionChoice(Choice):
    text: str
    reasoning_content: str | None = None
    content: str | None = None

    @classmethod
    def of(cls, index: int, r: Result, closing: str) -> CompletionChoice:
        """The whole completion as text (thinking, `closing`, answer), and its two parts."""
        return cls.last(
            index,
            r.outcome,
            text=r.reasoning_content + closing + r.content,
            reasoning_content=r.reasoning_content,
            content=r.content,
        )


class _CompletionBody(Head):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class Completion(_CompletionBody):
    usage: Usage


class CompletionChunk(_CompletionBody):
    """A streamed body; the class methods build one choice's chunks from the request's head
    (Head's fields)."""

    usage: Usage | None = None  # only on the last chunk, when stream_options.include_usage

    @classmethod
    def opening(cls, head: dict, index: int) -> list[Self]:
        return []

    @classmethod
    def text(cls, head: dict, index: int, field: DeltaField, delta: str) -> Self:
        content, reasoning = (delta, None) if field == "content" else (None, delta)
        return cls(
            **head, choices=[CompletionChoice(index=index, text=delta, content=content, reasoning_content=reasoning)]
        )

    @classmethod
    def final(cls, head: dict, index: int, o: Outcome) -> Self:
        return cls(**head, choices=[CompletionChoice.last(index, o, text="")])


# ----------------------------------------------------------------- /v1/models


class ModelCard(WireModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "thinkube"
    max_model_len: int


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
