"""The distill stage's parts: reply parsing, failure reasons, the trace histogram, the rate
limiter and Retry-After."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from openai.types.chat import ChatCompletion

from thinkube.workloads.curation.distill import REPLY_FORMAT, failure, histogram, split_reply
from thinkube.workloads.llm.client import retry_after_s
from thinkube.workloads.llm.ratelimit import RateLimiter
from thinkube.workloads.llm.reply import parse_reply


def _reply(message: dict, finish: str = "stop") -> dict:
    """A reply as the SDK builds it (unvalidated), read the way the distill stage reads it."""
    completion = ChatCompletion.construct(
        **{
            "choices": [{"message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 6}},
        }
    )
    return split_reply(parse_reply(completion, "x", REPLY_FORMAT))


def test_both_reply_styles_give_the_same_trace():
    a = _reply({"content": "Final Answer: 4", "reasoning_content": " think "})
    b = _reply({"content": "<think> think </think>\nFinal Answer: 4"})
    c = _reply({"content": "Final Answer: 4", "reasoning": "think"})
    assert (
        (a["thinking"], a["attempt"])
        == (b["thinking"], b["attempt"])
        == (c["thinking"], c["attempt"])
        == ("think", "Final Answer: 4")
    )
    assert (a["prompt_tokens"], a["completion_tokens"], a["reasoning_tokens"]) == (3, 9, 6)


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"thinking": "t", "attempt": "a", "finish_reason": "length"}, "cut at max_tokens 64"),
        ({"thinking": "", "attempt": "a", "finish_reason": "stop"}, "no thinking"),
        ({"thinking": "t", "attempt": "", "finish_reason": "stop"}, "no attempt"),
    ],
)
def test_unusable_replies_say_why(value, reason):
    assert failure(value, 64).startswith(reason)
    assert failure({"thinking": "t", "attempt": "a", "finish_reason": "stop"}, 64) is None


def test_histogram_buckets_by_powers_of_two():
    assert histogram([1, 2, 3, 4, 5, 300, 256]) == {"<=1": 1, "<=2": 1, "<=4": 2, "<=8": 1, "<=256": 1, "<=512": 1}


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_s(httpx.Headers({"Retry-After": "7"})) == 7
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_s(httpx.Headers({"Retry-After": when})) <= 30
    assert retry_after_s(httpx.Headers()) is None
    assert retry_after_s(httpx.Headers({"Retry-After": "soon"})) is None


def test_limiter_spaces_requests_and_pauses_everyone():
    async def run(limiter: RateLimiter, n: int, tokens: int = 0) -> float:
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire(tokens) for _ in range(n)))
        return time.monotonic() - start

    assert asyncio.run(run(RateLimiter(requests_per_minute=600), 6)) >= 0.5  # 6 requests are 5 intervals of 0.1 s
    paused = RateLimiter()
    paused.pause(0.3)
    assert asyncio.run(run(paused, 3)) >= 0.29 and paused.pauses == 1
    # 600 tokens/min is 10/s with one second (10 tokens) of credit at start: after the third call of 5
    # tokens the credit is spent, and each further call waits half a second.
    assert asyncio.run(run(RateLimiter(tokens_per_minute=600), 6, tokens=5)) >= 0.95
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(requests_per_minute=0)


def test_limiter_charges_what_a_reply_used():
    limiter = RateLimiter(tokens_per_minute=6000)  # 100 tokens/s
    limiter.charge(50)  # 100 of credit - 50 = 50 left: no wait
    start = time.monotonic()
    asyncio.run(limiter.acquire(0))
    assert time.monotonic() - start < 0.1
    limiter.charge(150)  # now 100 in debt: the next call waits a second
    start = time.monotonic()
    asyncio.run(limiter.acquire(0))
    assert time.monotonic() - start >= 0.9
