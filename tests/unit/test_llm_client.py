"""The shared chat client against real HTTP servers on 127.0.0.1 (uvicorn in a thread):
retries and Retry-After, failing fast on client errors, the request body, reply parsing,
timeouts and model discovery."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.servers import ThreadServer, free_port
from thinkube.workloads.formats import THINK_TAGS_FORMAT
from thinkube.workloads.llm.client import ChatClient
from thinkube.workloads.llm.ratelimit import RateLimiter
from thinkube.workloads.llm.reply import LLMError

QUESTION = [{"role": "user", "content": "q"}]


def scripted_app(*replies: tuple[int, dict, dict], delay_s: float = 0.0) -> FastAPI:
    """Answers each chat request with the next (status, body, headers), the last one repeated;
    keeps every request's headers and body."""
    app = FastAPI()
    app.state.requests = []

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "served-model", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        app.state.requests.append((request.headers, await request.json()))
        await asyncio.sleep(delay_s)
        status, body, headers = replies[min(len(app.state.requests), len(replies)) - 1]
        return JSONResponse(body, status_code=status, headers=headers)

    return app


def completion(message: dict, usage: dict | None = None, finish: str = "stop") -> tuple[int, dict, dict]:
    return (
        200,
        {
            "id": "x",
            "object": "chat.completion",
            "model": "m",
            "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        },
        {},
    )


def error(status: int, message: str, retry_after: str | None = None) -> tuple[int, dict, dict]:
    return status, {"error": {"message": message}}, {"Retry-After": retry_after} if retry_after else {}


def ask(url: str, **options):
    """One chat call through a fresh client; returns the reply and the seconds it took."""
    chat_options = {k: options.pop(k) for k in ("chat_format", "extra_body", "max_tokens", "seed") if k in options}

    async def go():
        async with ChatClient(url, model="m", backoff_s=0.01, **options) as client:
            start = time.monotonic()
            reply = await client.chat(QUESTION, temperature=0.0, **chat_options)
            return reply, time.monotonic() - start

    return asyncio.run(go())


def test_503_is_retried_after_the_servers_retry_after_which_pauses_the_limiter():
    limiter = RateLimiter()
    app = scripted_app(
        error(503, "warming up", retry_after="0.3"),
        error(503, "warming up", retry_after="0.3"),
        completion({"content": "4"}),
    )
    with ThreadServer(app) as server:
        reply, seconds = ask(server.url, limiter=limiter)
    assert reply.content == "4" and len(app.state.requests) == 3
    assert seconds >= 0.6 and limiter.pauses == 2  # Retry-After, not the 0.01 s back-off


def test_client_errors_fail_at_once_with_the_servers_message():
    app = scripted_app(error(400, "max_thinking_tokens: must be <= 131072"))
    with ThreadServer(app) as server, pytest.raises(LLMError, match="HTTP 400.*max_thinking_tokens: must be <= 131072"):
        ask(server.url)
    assert len(app.state.requests) == 1


def test_a_server_that_keeps_failing_or_is_down_is_given_up_on_after_the_retries():
    app = scripted_app(error(500, "boom"))
    with ThreadServer(app) as server, pytest.raises(LLMError, match="after 3 attempts; last: HTTP 500.*boom"):
        ask(server.url, max_retries=2)
    assert len(app.state.requests) == 3
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LLMError, match=f"POST {url}/v1/chat/completions failed after 2 attempts; last: Connect"):
        ask(url, max_retries=1)


def test_budget_fields_go_in_the_body_and_the_key_only_when_given():
    app = scripted_app(completion({"content": "4"}))
    budget = {"max_thinking_tokens": 64, "min_thinking_tokens": 8, "num_ignore": 2, "ignore_string": "Wait"}
    with ThreadServer(app) as server:
        ask(server.url + "/v1/", extra_body=budget, max_tokens=None, seed=7)
        ask(server.url, api_key="sk-test")
    (headers, body), (keyed, _) = app.state.requests
    assert body == {"model": "m", "messages": QUESTION, "temperature": 0.0, "seed": 7, **budget}  # None left out
    assert "authorization" not in headers and keyed["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    "message, chat_format",
    [
        ({"content": "Final Answer: 4", "reasoning_content": "think"}, None),
        ({"content": "Final Answer: 4", "reasoning": "think"}, None),
        ({"content": "<think>think</think>Final Answer: 4"}, THINK_TAGS_FORMAT),
    ],
)
def test_reasoning_comes_from_either_field_or_the_chat_format(message, chat_format):
    usage = {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 6}}
    with ThreadServer(scripted_app(completion(message, usage, finish="length"))) as server:
        reply, _ = ask(server.url, chat_format=chat_format)
    assert (reply.thinking.strip(), reply.content.strip(), reply.finish_reason) == (
        "think",
        "Final Answer: 4",
        "length",
    )
    assert (reply.prompt_tokens, reply.completion_tokens, reply.reasoning_tokens) == (3, 9, 6)


def test_a_reply_without_a_message_is_an_error_naming_the_endpoint():
    with (
        ThreadServer(scripted_app((200, {"object": "error"}, {}))) as server,
        pytest.raises(LLMError, match=r"chat/completions: reply without choices\[0\].message"),
    ):
        ask(server.url)


def test_a_slow_server_times_out_and_is_retried():
    app = scripted_app(completion({"content": "late"}), delay_s=2.0)
    with ThreadServer(app) as server:
        start = time.monotonic()
        with pytest.raises(LLMError, match="after 2 attempts; last: .*Timeout"):
            ask(server.url, timeout_s=0.2, max_retries=1)
        assert time.monotonic() - start < 1.5  # two attempts of 0.2 s, not the server's 2 s
    assert len(app.state.requests) == 2


def test_the_model_is_the_servers_own_when_none_is_given():
    app = scripted_app(completion({"content": "4"}))

    async def go(url: str) -> str:
        async with ChatClient(url) as client:
            await asyncio.gather(client.chat(QUESTION), client.chat(QUESTION))
            return client.model

    with ThreadServer(app) as server:
        assert asyncio.run(go(server.url)) == "served-model"
    assert [body["model"] for _, body in app.state.requests] == ["served-model"] * 2
    with pytest.raises(LLMError, match="models failed .*is the server up\\? or pass --model"):
        asyncio.run(go(f"http://127.0.0.1:{free_port()}"))
