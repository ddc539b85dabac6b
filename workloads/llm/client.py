"""One client for OpenAI-compatible chat endpoints: `thinkube serve`, vLLM, hosted APIs.

Built on the openai SDK with the SDK's own retries off, because ours also honour a shared
rate limit: connection errors, timeouts and RETRY_STATUS replies are retried with
exponential back-off, or after the server's Retry-After, which pauses every caller of the
limiter too (the server's limit is shared). Other 4xx replies fail at once: a request the
server rejects (say, a budget field out of range) would be rejected again, and its message
names the field.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from openai import APIConnectionError, APIError, APIStatusError, APITimeoutError, AsyncOpenAI, omit
from openai.types.chat import ChatCompletion

if TYPE_CHECKING:
    from openai._types import RequestOptions  # the SDK's own type for post()'s options

from thinkube.workloads.formats import ChatFormat
from thinkube.workloads.llm.ratelimit import RateLimiter
from thinkube.workloads.llm.reply import ChatReply, LLMError, parse_reply

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


def api_base(url: str) -> str:
    """`http://host:8000`, `.../v1` and `.../v1/` all mean the same OpenAI base."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's Retry-After, in seconds from now (it may be given as seconds or as a date)."""
    value = headers.get("retry-after")
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


class ChatClient:
    """Chat completions from one endpoint, for one model: the given one, else the server's own.

    `limiter` spaces the attempts and is charged the tokens each reply reports using.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        limiter: RateLimiter | None = None,
    ):
        self.base, self.model, self.timeout_s = api_base(url), model, timeout_s
        self.max_retries, self.backoff_s, self.limiter = max_retries, backoff_s, limiter
        # The key is always passed: left out, the SDK would send the user's OPENAI_API_KEY to
        # whatever server this is. With none, the Authorization header is left out instead.
        self._sdk = AsyncOpenAI(base_url=self.base, api_key=api_key or "unused", timeout=timeout_s, max_retries=0)
        self._headers = {} if api_key else {"Authorization": omit}
        self._model_lock = asyncio.Lock()

    def _problem(self, e: APIError) -> str:
        """What went wrong, in the server's words where it gave any."""
        if isinstance(e, APIStatusError):
            return f"HTTP {e.status_code}: {e.response.text[:500]}"
        if isinstance(e, APITimeoutError):
            return f"Timeout: no reply within {self.timeout_s:g} s"
        cause = e.__cause__ or e  # the SDK's "Connection error." hides which one
        return f"{type(cause).__name__}: {cause}"

    async def model_name(self) -> str:
        if self.model is not None:
            return self.model
        async with self._model_lock:  # one discovery call, however many requests wait for it
            if self.model is None:  # the server's only (or first) model, as `thinkube serve` has one
                try:
                    page = await self._sdk.models.list(extra_headers=self._headers)
                except APIError as e:
                    raise LLMError(
                        f"GET {self.base}/models failed ({self._problem(e)}): is the server up? or pass --model"
                    ) from e
                if not page.data:
                    raise LLMError(f"{self.base}/models lists no model; pass --model")
                self.model = page.data[0].id
            return self.model

    async def chat(
        self,
        messages: list[dict],
        *,
        chat_format: ChatFormat | None = None,
        tokens: int = 0,
        extra_body: dict | None = None,
        **fields,
    ) -> ChatReply:
        """One completion of `messages`. `fields`: standard request fields (temperature,
        max_tokens, seed; None ones are left out); `extra_body`: fields outside the OpenAI
        schema, such as the budget-forcing ones; `tokens`: the prompt's estimate the limiter
        counts; `chat_format` splits the content of servers that return no reasoning field."""
        url = f"{self.base}/chat/completions"
        body = {
            "model": await self.model_name(),
            "messages": messages,
            **{k: v for k, v in fields.items() if v is not None},
        }
        # The SDK's request for custom calls, not chat.completions.create: that one walks every
        # message through its typed schema first, which doubles the SDK's cost per call (about
        # 0.6 ms instead of 0.3 against an instant server), and these messages are plain dicts.
        options: RequestOptions = {"headers": self._headers, "extra_json": extra_body or {}}
        for attempt in range(self.max_retries + 1):
            if self.limiter is not None:
                await self.limiter.acquire(tokens)
            wait = None
            try:
                completion = await self._sdk.post(
                    "/chat/completions", cast_to=ChatCompletion, body=body, options=options
                )
            except APIStatusError as e:
                problem = self._problem(e)
                if e.status_code not in RETRY_STATUS:
                    raise LLMError(f"POST {url} failed with {problem}") from e
                wait = retry_after_s(e.response.headers)
                if wait is not None and self.limiter is not None:
                    self.limiter.pause(wait)
            except APIConnectionError as e:  # timeouts included
                problem = self._problem(e)
            else:
                reply = parse_reply(completion, url, chat_format)
                if self.limiter is not None:
                    self.limiter.charge((reply.prompt_tokens or tokens) - tokens + (reply.completion_tokens or 0))
                return reply
            if attempt < self.max_retries:
                delay = wait if wait is not None else min(MAX_BACKOFF_S, self.backoff_s * 2**attempt)
                log.warning(
                    "POST %s: %s; retrying in %.2f s (%d/%d)", url, problem, delay, attempt + 1, self.max_retries
                )
                await asyncio.sleep(delay)
        raise LLMError(f"POST {url} failed after {self.max_retries + 1} attempts; last: {problem}")

    async def aclose(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
