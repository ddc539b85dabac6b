"""What a sweep evaluates: anything that turns a chat into (thinking, answer, token counts).

`HTTPTarget` talks to `thinkube serve` or any OpenAI-compatible endpoint through the shared
chat client, sending the budget-forcing fields in the request body; `make_target` builds it
from a --target URL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from thinkube.workloads.evaluation.settings import BudgetSetting
from thinkube.workloads.formats import ChatFormat
from thinkube.workloads.llm.client import ChatClient


@dataclass(frozen=True)
class Generation:
    thinking: str
    answer: str
    thinking_tokens: int | None  # None: the endpoint does not report reasoning tokens
    answer_tokens: int | None
    finish_reason: str | None = None  # "length": the completion cap cut it


class Target(Protocol):
    async def generate(
        self,
        messages: list[dict],
        setting: BudgetSetting,
        *,
        n: int = 1,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> list[Generation]: ...

    async def aclose(self) -> None: ...

    def describe(self) -> dict:
        """What identifies the target in results (URL, model); must be JSON-serialisable."""
        ...


class HTTPTarget:
    """An OpenAI-compatible chat endpoint.

    Each sample is its own request (seed + i): `usage` reports tokens per request, not per
    choice, so this is the only way to get every sample's thinking tokens. Endpoints that
    return no `reasoning_content` get their content split with `chat_format`, when given.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 3600.0,
        max_retries: int = 5,
        retry_backoff_s: float = 0.5,
        chat_format: ChatFormat | None = None,
    ):
        self.client = ChatClient(
            url, model=model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries, backoff_s=retry_backoff_s
        )
        self.chat_format = chat_format

    def describe(self) -> dict:
        return {"type": "http", "url": self.client.base, "model": self.client.model}

    async def _one(
        self, messages: list[dict], setting: BudgetSetting, temperature: float, seed: int | None, max_tokens: int | None
    ) -> Generation:
        r = await self.client.chat(
            messages,
            chat_format=self.chat_format,
            extra_body=setting.request_fields(),
            temperature=temperature,
            seed=seed,
            max_tokens=max_tokens,
        )
        answer_tokens = (
            r.completion_tokens - r.reasoning_tokens
            if r.completion_tokens is not None and r.reasoning_tokens is not None
            else None
        )
        return Generation(r.thinking or "", r.content, r.reasoning_tokens, answer_tokens, r.finish_reason)

    async def generate(
        self,
        messages: list[dict],
        setting: BudgetSetting,
        *,
        n: int = 1,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> list[Generation]:
        if n == 1:  # the sweep's case: no extra task per request
            return [await self._one(messages, setting, temperature, seed, max_tokens)]
        seeds = [None if seed is None else seed + i for i in range(n)]
        tasks = [asyncio.ensure_future(self._one(messages, setting, temperature, s, max_tokens)) for s in seeds]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:  # one sample failed: do not leave its siblings running unobserved
                t.cancel()
            raise

    async def aclose(self) -> None:
        await self.client.aclose()


def make_target(spec: str, **options) -> Target:
    """The target a --target string names: an OpenAI-compatible server by http(s):// URL."""
    if spec.startswith(("http://", "https://")):
        return HTTPTarget(spec, **options)
    raise ValueError(
        f"target {spec!r} is not an http(s):// URL: serve the model first (thinkube serve --model {spec}) "
        f"and pass its URL, e.g. --target http://127.0.0.1:8000"
    )
