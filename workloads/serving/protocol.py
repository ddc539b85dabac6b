"""OpenAI-compatible request bodies with Thinkube's budget-forcing fields. Field bounds are
checked here; checks that need the server's defaults or the model (min <= max thinking,
context length, model name) are in app.Server.settings."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

# Hard bounds: a request can never ask the server for unbounded work.
MAX_TOKENS_CAP = 131072
MAX_NUM_IGNORE = 64
MAX_N = 16
MAX_STRING = 256


class BudgetFields(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we don't use (user, ...)

    model: str
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: StrictInt = Field(1, ge=1, le=MAX_N)
    seed: int | None = None
    stream: bool = False
    stream_options: dict | None = None
    # Strict: "7" or true is a client bug to report, not a budget to guess.
    max_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_CAP)
    max_thinking_tokens: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS_CAP)
    min_thinking_tokens: StrictInt = Field(0, ge=0, le=MAX_TOKENS_CAP)
    num_ignore: StrictInt = Field(0, ge=0, le=MAX_NUM_IGNORE)
    ignore_string: str = Field("Wait", max_length=MAX_STRING)
    final_answer_prefix: str = Field("Final Answer:", max_length=MAX_STRING)

    @property
    def completion_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


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
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages):
        if messages[-1].role != "user":
            raise ValueError("the last message must have role 'user': the server generates the assistant turn")
        return messages


class CompletionRequest(BudgetFields):
    prompt: str = Field(min_length=1, max_length=4_000_000)
