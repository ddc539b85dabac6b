"""The OpenAI-compatible server over real HTTP on 127.0.0.1, driven by the official
`openai` client and by raw requests for the error paths."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.patterned_model import patterned_model
from tests.support.servers import ThreadServer
from thinkube.workloads.formats.chat import S1_FORMAT
from thinkube.workloads.serving.app import ServerConfig, create_app
from thinkube.workloads.serving.engines.hf import TransformersEngine

Q = [{"role": "user", "content": "What is question 99?"}]


@pytest.fixture(scope="module")
def server():
    engine = TransformersEngine(str(patterned_model()), "pat", max_model_len=256)
    app = create_app(engine, ServerConfig(fmt=S1_FORMAT, max_body_bytes=64 * 1024))
    with ThreadServer(app) as srv:
        from tests.support.servers import wait_healthy

        wait_healthy(srv.url, 60)
        yield srv


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")


def test_chat_with_openai_client_and_extra_body(client):
    r = client.chat.completions.create(model="pat", messages=Q, extra_body={"max_thinking_tokens": 4})
    msg = r.choices[0].message
    assert msg.content == "Final Answer: 7"
    assert r.usage.completion_tokens_details.reasoning_tokens == 4
    assert len(msg.reasoning_content) > 0
    r = client.chat.completions.create(model="pat", messages=Q)
    assert r.choices[0].message.content == "Answer: 7"
    assert r.choices[0].message.reasoning_content == "one two three four five six"


def test_chat_streaming_matches_non_streaming(client):
    body = {"num_ignore": 1, "max_thinking_tokens": 40}
    full = client.chat.completions.create(model="pat", messages=Q, extra_body=body).choices[0].message
    thinking, answer, usage = "", "", None
    for chunk in client.chat.completions.create(
        model="pat", messages=Q, stream=True, extra_body=body, stream_options={"include_usage": True}
    ):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            thinking += getattr(c.delta, "reasoning_content", None) or ""
            answer += c.delta.content or ""
    assert thinking.strip() == full.reasoning_content and answer.strip() == full.content
    assert usage.completion_tokens_details.reasoning_tokens <= 40


def test_completions_endpoint_and_stream(client):
    prompt = "<|im_start|>user\nWhat is question 99?<|im_end|>\n<|im_start|>assistant\n<|im_start|>think\n"
    r = client.completions.create(model="pat", prompt=prompt, max_tokens=60, extra_body={"max_thinking_tokens": 6})
    choice = r.choices[0]
    assert "<|im_start|>answer" in choice.text and choice.content.startswith("Final Answer:")
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="pat", prompt=prompt, max_tokens=60, stream=True, extra_body={"max_thinking_tokens": 6}
        )
        if c.choices
    )
    assert streamed.replace("\n", "").startswith(choice.reasoning_content.replace("\n", ""))


def test_n_samples_with_seed(client):
    r = client.chat.completions.create(
        model="pat", messages=Q, n=3, temperature=1.0, seed=5, extra_body={"max_thinking_tokens": 8}
    )
    assert len(r.choices) == 3 and r.usage.completion_tokens_details.reasoning_tokens == 24


def test_models_and_health(server):
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert [m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]] == ["pat"]


@pytest.mark.parametrize(
    "patch, status, field",
    [
        ({"max_thinking_tokens": -1}, 400, "max_thinking_tokens"),
        ({"max_thinking_tokens": 10**9}, 400, "max_thinking_tokens"),
        ({"num_ignore": 1000}, 400, "num_ignore"),
        ({"min_thinking_tokens": 50, "max_thinking_tokens": 10}, 400, "min_thinking_tokens"),
        ({"num_ignore": 1, "ignore_string": ""}, 400, "ignore_string"),
        ({"num_ignore": 1, "ignore_string": "Wait<|im_start|>"}, 400, "ignore_string"),
        ({"model": "gpt-4"}, 400, "model"),
        ({"max_tokens": 10000}, 400, "max_tokens"),
        ({"messages": [{"role": "user", "content": "word " * 400}]}, 400, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
        ({"max_thinking_tokens": "7"}, 400, "max_thinking_tokens"),  # strings and booleans are not coerced
        ({"num_ignore": True}, 400, "num_ignore"),
        ({"max_tokens": 12.5}, 400, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            400,
            "messages",
        ),
    ],
)
def test_bad_requests_name_the_field(server, patch, status, field):
    body = {"model": "pat", "messages": Q, **patch}
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"].startswith(field) and field in err["message"]


def openai_error(r: httpx.Response) -> dict:
    """The OpenAI error object, checked for its shape."""
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_body_over_the_limit_is_refused(server):
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "pat", "messages": [{"role": "user", "content": "x" * 100_000}]},
    )
    assert r.status_code == 413 and "request body over" in openai_error(r)["message"]


def test_a_chunked_body_over_the_limit_is_413_too(server):
    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "pat", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    r = httpx.post(f"{server.url}/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "request body over" in openai_error(r)["message"]


@pytest.mark.parametrize(
    "body, says",
    [
        (b'{"model": "pat", "messages": [', "not valid JSON"),
        (b'{"model": "pat", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "not UTF-8"),
    ],
)
def test_unreadable_bodies_are_openai_errors_without_a_param(server, body, says):
    r = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    err = openai_error(r)
    assert r.status_code == 400 and says in err["message"] and err["param"] is None


def test_content_parts_are_accepted_as_the_openai_client_sends_them(client):
    parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "question 99?"}]
    as_parts = client.chat.completions.create(model="pat", messages=[{"role": "user", "content": parts}], max_tokens=24)
    as_text = client.chat.completions.create(model="pat", messages=Q, max_tokens=24)
    assert as_parts.choices[0].message.content == as_text.choices[0].message.content


def test_metrics_count_tokens_and_extensions(server, client):
    client.chat.completions.create(model="pat", messages=Q, extra_body={"num_ignore": 2, "max_thinking_tokens": 60})
    text = httpx.get(f"{server.url}/metrics").text
    values = {
        line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")
    }
    assert values["thinkube_extensions_total"] >= 2
    assert values["thinkube_thinking_tokens_total"] > 0
    assert values['thinkube_requests_total{endpoint="/v1/chat/completions",status="200"}'] >= 1


def test_health_reports_a_model_that_failed_to_load(tmp_path):
    app = create_app(TransformersEngine(str(tmp_path), "broken"), ServerConfig(fmt=S1_FORMAT))
    with ThreadServer(app) as srv:
        import time

        for _ in range(100):
            r = httpx.get(f"{srv.url}/health")
            if r.json()["status"] != "loading":
                break
            time.sleep(0.1)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        r = httpx.post(f"{srv.url}/v1/chat/completions", json={"model": "broken", "messages": Q})
        assert r.status_code == 503
