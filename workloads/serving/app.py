"""The OpenAI-compatible budget-forcing server (`thinkube serve`).

POST /v1/chat/completions, POST /v1/completions (both with SSE streaming), GET /v1/models,
GET /health (503 until the model can serve), GET /metrics (Prometheus).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from thinkube.bodylimit import BodyLimit
from thinkube.workloads.formats.chat import render_messages
from thinkube.workloads.serving.budget import Outcome
from thinkube.workloads.serving.errors import ApiError, add_error_handlers, too_large
from thinkube.workloads.serving.protocol import ChatRequest, CompletionRequest
from thinkube.workloads.serving.responses import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChoice,
    CompletionChunk,
    ModelCard,
    ModelList,
    Usage,
    WireModel,
)
from thinkube.workloads.serving.server import Generation, Server, ServerConfig

__all__ = ["ServerConfig", "create_app"]


Chunk = type[ChatCompletionChunk] | type[CompletionChunk]


def _sse(body: dict) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()


def _usage(gen: Generation, outcomes: list[Outcome]) -> Usage:
    return Usage.of(len(gen.prompt_ids), outcomes)


async def _stream(server: Server, gen: Generation, head: dict, chunk: Chunk) -> AsyncIterator[bytes]:
    """The choices one after another (simple, ordered streams) as `chunk` bodies, then the
    usage when asked for; an error mid-stream ends it as an OpenAI error object."""

    def event(body: WireModel) -> bytes:
        return _sse(body.model_dump())

    outcomes = []
    with server.in_flight():
        try:
            for i in range(gen.n):
                o = Outcome()
                outcomes.append(o)
                for body in chunk.opening(head, i):
                    yield event(body)
                async for field, delta in server.stream(gen, i, o):
                    yield event(chunk.text(head, i, field, delta))
                yield event(chunk.final(head, i, o))
            if gen.include_usage:
                yield event(chunk(**head, choices=[], usage=_usage(gen, outcomes)))
            yield b"data: [DONE]\n\n"
        except ApiError as e:
            yield _sse(e.body())


def create_app(engine, config: ServerConfig) -> FastAPI:
    server = Server(engine, config)

    async def lifespan(app: FastAPI):
        loader = asyncio.create_task(server.load())  # /health answers 503 while this runs
        yield
        loader.cancel()
        await engine.close()

    app = FastAPI(title="Thinkube budget-forcing server", lifespan=lifespan)
    app.state.server = server
    add_error_handlers(app, config.max_body_bytes)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith("/v1/") and request.method == "POST":
            server.metrics.requests.labels(request.url.path, str(response.status_code)).inc()
            server.metrics.latency.labels(request.url.path).observe(time.perf_counter() - t0)
        return response

    @app.get("/health")
    async def health():
        if server.ready:
            return {"status": "ok", "model": engine.name}
        if server.load_error:
            return JSONResponse({"status": "failed", "error": server.load_error}, 503)
        return JSONResponse({"status": "loading"}, 503)

    @app.get("/metrics")
    async def metrics():
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=engine.name, max_model_len=engine.max_model_len)])

    def head(prefix: str) -> dict:
        return {"id": prefix + uuid.uuid4().hex, "created": int(time.time()), "model": engine.name}

    def event_stream(gen: Generation, prefix: str, chunk: Chunk) -> StreamingResponse:
        return StreamingResponse(_stream(server, gen, head(prefix), chunk), media_type="text/event-stream")

    @app.post("/v1/chat/completions", response_model=ChatCompletion)
    async def chat(req: ChatRequest):
        gen = server.accept(req, render_messages([m.model_dump() for m in req.messages], config.fmt))
        if req.stream:
            return event_stream(gen, "chatcmpl-", ChatCompletionChunk)
        results = await server.complete(gen)
        return ChatCompletion(
            **head("chatcmpl-"),
            choices=[ChatChoice.of(i, r) for i, r in enumerate(results)],
            usage=_usage(gen, [r.outcome for r in results]),
        )

    @app.post("/v1/completions", response_model=Completion)
    async def completions(req: CompletionRequest):
        prompt = req.prompt
        if not prompt.rstrip().endswith(config.fmt.think_start):
            prompt = prompt + config.fmt.think_start + "\n"  # thinking starts where the prompt ends
        gen = server.accept(req, prompt)
        if req.stream:
            return event_stream(gen, "cmpl-", CompletionChunk)
        results = await server.complete(gen)
        closing = f"\n{config.fmt.end_of_thinking}\n"
        return Completion(
            **head("cmpl-"),
            choices=[CompletionChoice.of(i, r, closing) for i, r in enumerate(results)],
            usage=_usage(gen, [r.outcome for r in results]),
        )

    app.add_middleware(BodyLimit, limit=config.max_body_bytes, render=lambda limit: too_large(limit).response())
    return app
