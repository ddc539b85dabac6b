"""OpenAI-compatible request bodies with Thinkube's budget-forcing fields. Field bounds are
checked here when the body is parsed; BudgetFields.resolve applies the server's defaults
and the checks that need them or the prompt (min <= max thinking, context length)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from thinkube.workloads.serving.errors import ApiError
from thinkube.workloads.serving.settings import BudgetSettings

# Hard bounds: a request can never ask the server for unbounded work.
MAX_TOKENS_CAP = 131072
MAX_NUM_IGNORE = 64
MAX_N = 16
MAX_STRING = 256

# Settings a request names by the same field; max_tokens is resolved against the context.
DEFAULTED = tuple(f.name for f in fields(BudgetSettings) if f.name != "max_tokens")


class BudgetFields(BaseModel):
    """The fields both endpoints share. A budget or sampling field left out (None) takes the
    server's default in resolve, as vLLM's to_sampling_params does."""

    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we don't use (user, ...)
    prompt_field: ClassVar[str]  # the field holding the prompt, named by errors about its length

    model: str
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: StrictInt = Field(1, ge=1, le=MAX_N)
    seed: int | None = None
    stream: bool = False
    stream_options: dict | None = None
    # Strict: "7" or true is a client bug to report, not a budget to guess.
    max_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_CAP)
    max_thinking_tokens: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS_CAP)
    min_thinking_tokens: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS_CAP)
    num_ignore: StrictInt | None = Field(None, ge=0, le=MAX_NUM_IGNORE)
    ignore_string: str | None = Field(None, max_length=MAX_STRING)
    final_answer_prefix: str | None = Field(None, max_length=MAX_STRING)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def resolve(self, defaults: BudgetSettings, prompt_tokens: int, context: int) -> BudgetSettings:
        """The request's settings: what it names, `defaults` for what it leaves out, the
        completion capped by the room the prompt leaves in the context. Raises ApiError
        naming the field at fault."""
        if prompt_tokens >= context:
            name = "prompt" if self.prompt_field == "prompt" else f"prompt ({self.prompt_field})"
            raise ApiError(
                400,
                f"{name} has {prompt_tokens} tokens but the model's context is {context}: shorten the prompt",
                self.prompt_field,
            )
        room = context - prompt_tokens
        cap = self.max_completion_tokens or self.max_tokens
        if cap is not None and cap > room:
            raise ApiError(
                400,
                f"max_tokens={cap} plus the prompt's {prompt_tokens} tokens exceeds the context of "
                f"{context}: ask for at most {room}",
                "max_tokens",
            )
        named = {k: getattr(self, k) for k in DEFAULTED if getattr(self, k) is not None}
        s = replace(defaults, max_tokens=cap or min(defaults.max_tokens, room), **named)
        if s.max_thinking_tokens is not None and s.min_thinking_tokens > s.max_thinking_tokens:
            # Maybe a request value against a server default: name the minimum either way.
            raise ApiError(
                400,
                f"min_thinking_tokens ({s.min_thinking_tokens}) must be <= max_thinking_tokens "
                f"({s.max_thinking_tokens}): lower the minimum or raise the maximum",
                "min_thinking_tokens",
            )
        if (s.min_thinking_tokens or s.num_ignore) and not s.ignore_string:
            raise ApiError(
                400,
                "ignore_string is empty but min_thinking_tokens/num_ignore ask for extensions: "
                "give an ignore_string such as 'Wait'",
                "ignore_string",
            )
        return s


class TextPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=1_000_000)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    # A string, or OpenAI content parts (what the openai client and most tools send); text only.
    content: str | list[TextPart] = Field(max_length=1_000_000)

    @field_validator("content")
    @classmethod
    def _joined(cls, content):
        return content if isinstance(content, str) else "".join(part.text for part in content)


class ChatRequest(BudgetFields):
    prompt_field: ClassVar[str] = "messages"

    messages: list[ChatMessage] = Field(min_length=1, max_length=256)

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages):
        if messages[-1].role != "user":
            raise ValueError("the last message must have role 'user': the server generates the assistant turn")
        return messages


class CompletionRequest(BudgetFields):
    prompt_field: ClassVar[str] = "prompt"

    prompt: str = Field(min_length=1, max_length=4_000_000)
