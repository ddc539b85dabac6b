"""What a sweep evaluates: anything that turns a chat into (thinking, answer, token counts).

`HTTPTarget` talks to `thinkube serve` or any OpenAI-compatible endpoint, sending the
budget-forcing fields in the request body; `make_target` builds it from a --target URL.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from thinkube.workloads.evaluation.ratelimit import RateLimiter
from thinkube.workloads.evaluation.settings import BudgetSetting
from thinkube.workloads.formats import ChatFormat, split_completion

log = logging.getLogger(__name__)

RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Generation:
    thinking: str
    answer: str
    thinking_tokens: int | None  # None: the endpoint does not report reasoning tokens
    answer_tokens: int | None
    finish_reason: str | None = None  # "length": the completion cap cut it


class Target(Protocol):
    async def generate(self, messages: list[dict], setting: BudgetSetting, *, n: int = 1, temperature: float = 0.0,
                       seed: int | None = None, max_tokens: int | None = None) -> list[Generation]: ...

    async def aclose(self) -> None: ...

    def describe(self) -> dict:
        """What identifies the target in results (URL, model); must be JSON-serialisable."""
        ...


class TargetError(RuntimeError):
    """The target refused or kept failing a request; the message carries its reply."""


@dataclass(frozen=True)
class ChatReply:
    """One chat completion's first choice, as every OpenAI-compatible caller here reads it."""

    thinking: str | None  # None: no reasoning field and no chat format to split the content with
    content: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None


def parse_chat_reply(reply: dict, where: str, chat_format: ChatFormat | None = None) -> ChatReply:
    """The thinking comes from `reasoning_content` (vLLM's reasoning parsers, Thinkube) or
    `reasoning` (newer servers); failing both, from the content split with `chat_format`."""
    try:
        choice = reply["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise TargetError(f"{where}: reply without choices[0].message: {str(reply)[:300]}") from e
    content = message.get("content") or ""
    thinking = message.get("reasoning_content", message.get("reasoning"))
    if thinking is None and chat_format is not None:
        split = split_completion(content, chat_format)
        thinking, content = split.thinking, split.answer if split.finished_thinking else ""
    usage = reply.get("usage") or {}
    return ChatReply(thinking, content, choice.get("finish_reason"), usage.get("prompt_tokens"),
                     usage.get("completion_tokens"), (usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))


def retry_after_s(reply: httpx.Response) -> float | None:
    """The server's Retry-After, in seconds from now (it may be given as seconds or as a date)."""
    value = reply.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


async def post_json(client: httpx.AsyncClient, url: str, body: dict, *, max_retries: int = 5,
                    backoff_s: float = 0.5, limiter: RateLimiter | None = None, tokens: int = 0) -> dict:
    """POST with retries on connection errors and retryable statuses (exponential back-off,
    or the server's Retry-After when it gives one, which also pauses `limiter`'s callers).

    Other 4xx replies fail at once: a request the server rejects (say, a budget field out
    of range) would be rejected again, and its message names the field. `limiter` spaces
    the attempts; `tokens` is the request's prompt estimate it counts.
    """
    for attempt in range(max_retries + 1):
        if limiter is not None:
            await limiter.acquire(tokens)
        wait = None
        try:
            reply = await client.post(url, json=body)
        except httpx.TransportError as e:
            problem = f"{type(e).__name__}: {e}"
        else:
            if reply.status_code < 400:
                return reply.json()
            problem = f"HTTP {reply.status_code}: {reply.text[:500]}"
            if reply.status_code not in RETRY_STATUS:
                raise TargetError(f"POST {url} failed with {problem}")
            wait = retry_after_s(reply)
            if wait is not None and limiter is not None:
                limiter.pause(wait)
        if attempt < max_retries:
            delay = wait if wait is not None else min(30.0, backoff_s * 2 ** attempt)
            log.warning("POST %s: %s; retrying in %.2f s (%d/%d)", url, problem, delay, attempt + 1, max_retries)
            await asyncio.sleep(delay)
    raise TargetError(f"POST {url} failed after {max_retries + 1} attempts; last: {problem}")


def api_base(url: str) -> str:
    """`http://host:8000`, `.../v1` and `.../v1/` all mean the same OpenAI base."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class HTTPTarget:
    """An OpenAI-compatible chat endpoint.

    Each sample is its own request (seed + i): `usage` reports tokens per request, not per
    choice, so this is the only way to get every sample's thinking tokens. Endpoints that
    return no `reasoning_content` get their content split with `chat_format`, when given.
    """

    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None, timeout_s: float = 3600.0,
                 max_retries: int = 5, retry_backoff_s: float = 0.5, chat_format: ChatFormat | None = None):
        self.base = api_base(url)
        self.model = model
        self.chat_format = chat_format
        self.max_retries, self.retry_backoff_s = max_retries, retry_backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No connection cap here: the sweep's concurrency bounds requests in flight.
        self._client = httpx.AsyncClient(timeout=timeout_s, headers=headers,
                                         limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        self._model_lock = asyncio.Lock()

    def describe(self) -> dict:
        return {"type": "http", "url": self.base, "model": self.model}

    async def _model_name(self) -> str:
        async with self._model_lock:
            if self.model is None:  # the server's only (or first) model, as `thinkube serve` has one
                try:
                    reply = await self._client.get(f"{self.base}/models")
                    reply.raise_for_status()
                except httpx.HTTPError as e:
                    raise TargetError(f"GET {self.base}/models failed ({e}): is the server up? or pass --model") from e
                models = reply.json().get("data") or []
                if not models:
                    raise TargetError(f"{self.base}/models lists no model; pass --model")
                self.model = models[0]["id"]
            return self.model

    async def _one(self, messages: list[dict], setting: BudgetSetting, temperature: float, seed: int | None,
                   max_tokens: int | None) -> Generation:
        body = {"model": await self._model_name(), "messages": messages, "temperature": temperature, "n": 1,
                **setting.request_fields()}
        if seed is not None:
            body["seed"] = seed
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        reply = await post_json(self._client, f"{self.base}/chat/completions", body, max_retries=self.max_retries,
                                backoff_s=self.retry_backoff_s)
        r = parse_chat_reply(reply, f"{self.base}/chat/completions", self.chat_format)
        answer_tokens = r.completion_tokens - r.reasoning_tokens \
            if r.completion_tokens is not None and r.reasoning_tokens is not None else None
        return Generation(r.thinking or "", r.content, r.reasoning_tokens, answer_tokens, r.finish_reason)

    async def generate(self, messages: list[dict], setting: BudgetSetting, *, n: int = 1, temperature: float = 0.0,
                       seed: int | None = None, max_tokens: int | None = None) -> list[Generation]:
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
        await self._client.aclose()


def make_target(spec: str, **options) -> Target:
    """The target a --target string names: an OpenAI-compatible server by http(s):// URL."""
    if spec.startswith(("http://", "https://")):
        return HTTPTarget(spec, **options)
    raise ValueError(f"target {spec!r} is not an http(s):// URL: serve the model first (thinkube serve --model {spec}) "
                     f"and pass its URL, e.g. --target http://127.0.0.1:8000")
