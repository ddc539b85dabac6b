"""The OpenAI-compatible budget-forcing server (`thinkube serve`).

POST /v1/chat/completions, POST /v1/completions (both with SSE streaming), GET /v1/models,
GET /health (503 until the model can serve), GET /metrics (Prometheus).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import JSONResponse, Response, StreamingResponse

from thinkube.workloads.formats.chat import ChatFormat, render_messages
from thinkube.workloads.serving.budget import (
    ANSWER, CLOSE, BudgetForcing, BudgetSettings, Delimiters, Outcome,
)
from thinkube.workloads.serving.metrics import ServerMetrics
from thinkube.workloads.serving.protocol import BudgetFields, ChatRequest, CompletionRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    fmt: ChatFormat
    default_max_tokens: int = 4096  # when the request names none (still capped by the context)
    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrency: int = 256  # generations in flight; more requests wait
    defaults: dict | None = None  # budget defaults applied when a request omits them (operator args)


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.type = status, message, param, type_


def _error(status: int, message: str, param: str | None = None, type_: str = "invalid_request_error"):
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": status}}, status)


class BodyLimit:
    """Refuse bodies over the limit before they are read whole (declared or streamed size)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and int(declared) > self.limit:
            return await self._reject(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, f"request body over {self.limit} bytes")
            return message

        try:
            await self.app(scope, counted, send)
        except ApiError:
            await self._reject(send)

    async def _reject(self, send):
        body = json.dumps({"error": {"message": f"request body over {self.limit} bytes: send a shorter prompt",
                                     "type": "invalid_request_error", "param": None, "code": 413}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class Server:
    def __init__(self, engine, config: ServerConfig):
        self.engine, self.config = engine, config
        self.metrics = ServerMetrics()
        self.ready = False
        self.load_error: str | None = None
        self.controller: BudgetForcing | None = None
        self._slots = asyncio.Semaphore(config.max_concurrency)

    async def load(self) -> None:
        try:
            await self.engine.start()
            self.controller = BudgetForcing(self.engine, Delimiters.from_tokenizer(self.engine.tokenizer,
                                                                                   self.config.fmt))
            self.ready = True
            log.info("model %s ready (context %d tokens)", self.engine.name, self.engine.max_model_len)
        except Exception as e:  # reported by /health; the liveness probe restarts the pod
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("model failed to load")

    # ------------------------------------------------------------- request -> settings

    def require_ready(self) -> None:
        if not self.ready:
            raise ApiError(503, "model is still loading: retry when GET /health returns 200", type_="unavailable")

    def settings(self, req: BudgetFields, prompt_len: int, seed_offset: int) -> BudgetSettings:
        if req.model != self.engine.name:
            raise ApiError(400, f"model {req.model!r} is not served here; available: [{self.engine.name!r}]",
                           "model", "model_not_found")
        context = self.engine.max_model_len
        if prompt_len >= context:
            raise ApiError(400, f"prompt (messages) has {prompt_len} tokens but the model's context is {context}: "
                                f"shorten the prompt", "messages")
        room = context - prompt_len
        cap = req.completion_cap
        if cap is not None and cap > room:
            raise ApiError(400, f"max_tokens={cap} plus the prompt's {prompt_len} tokens exceeds the context of "
                                f"{context}: ask for at most {room}", "max_tokens")
        d = self.config.defaults or {}
        fields = req.model_fields_set
        pick = lambda k: getattr(req, k) if k in fields or k not in d else d[k]  # noqa: E731
        settings = BudgetSettings(
            max_tokens=cap or min(self.config.default_max_tokens, room),
            max_thinking_tokens=pick("max_thinking_tokens"), min_thinking_tokens=pick("min_thinking_tokens"),
            num_ignore=pick("num_ignore"), ignore_string=pick("ignore_string"),
            final_answer_prefix=pick("final_answer_prefix"), temperature=req.temperature, top_p=req.top_p,
            seed=None if req.seed is None else req.seed + 7919 * seed_offset,
        )
        mx = settings.max_thinking_tokens
        if mx is not None and settings.min_thinking_tokens > mx:  # maybe a request value against a server default
            raise ApiError(400, f"min_thinking_tokens ({settings.min_thinking_tokens}) must be <= max_thinking_tokens "
                                f"({mx}): lower the minimum or raise the maximum", "min_thinking_tokens")
        if (settings.min_thinking_tokens or settings.num_ignore) and not settings.ignore_string:
            raise ApiError(400, "ignore_string is empty but min_thinking_tokens/num_ignore ask for extensions: "
                                "give an ignore_string such as 'Wait'", "ignore_string")
        try:
            self.controller.plan(settings)
        except ValueError as e:
            raise ApiError(400, f"{e}: choose another ignore_string", "ignore_string") from e
        return settings

    # ------------------------------------------------------------- generation

    async def complete(self, prompt_ids: list[int], s: BudgetSettings) -> tuple[str, str, Outcome]:
        thinking, answer, outcome = [], [], Outcome()
        async with self._slots:
            async for ev in self.controller.run(prompt_ids, s, outcome):
                if ev.kind == ANSWER:
                    answer += ev.token_ids
                elif ev.kind != CLOSE:
                    thinking += ev.token_ids
        self.metrics.observe(outcome)
        return self._decode(thinking).strip(), (outcome.answer_prefix + self._decode(answer)).strip(), outcome

    async def stream(self, prompt_ids: list[int], s: BudgetSettings, outcome: Outcome):
        """Yield (field, text delta) with field "reasoning_content" or "content"."""
        phase_ids: dict[str, list[int]] = {"reasoning_content": [], "content": []}
        sent: dict[str, str] = {"reasoning_content": "", "content": ""}
        async with self._slots:
            async for ev in self.controller.run(prompt_ids, s, outcome):
                if ev.kind == CLOSE:
                    if outcome.answer_prefix:
                        yield "content", outcome.answer_prefix
                    continue
                key = "content" if ev.kind == ANSWER else "reasoning_content"
                phase_ids[key] += ev.token_ids
                text = self._decode(phase_ids[key])
                if text.endswith("\ufffd"):
                    continue  # half of a multi-byte character: wait for the rest
                delta, sent[key] = text[len(sent[key]):], text
                if delta:
                    yield key, delta
        self.metrics.observe(outcome)

    def _decode(self, ids: list[int]) -> str:
        return self.engine.tokenizer.decode(ids, skip_special_tokens=True)


def _usage(prompt_len: int, outcomes: list[Outcome]) -> dict:
    completion = sum(o.thinking_tokens + o.answer_tokens for o in outcomes)
    return {
        "prompt_tokens": prompt_len, "completion_tokens": completion, "total_tokens": prompt_len + completion,
        "completion_tokens_details": {"reasoning_tokens": sum(o.thinking_tokens for o in outcomes)},
    }


def _budget_info(o: Outcome) -> dict:
    return {"thinking_tokens": o.thinking_tokens, "answer_tokens": o.answer_tokens, "extensions": o.extensions,
            "forced_end": o.forced_end}


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def create_app(engine, config: ServerConfig) -> FastAPI:
    server = Server(engine, config)

    async def lifespan(app: FastAPI):
        loader = asyncio.create_task(server.load())  # /health answers 503 while this runs
        yield
        loader.cancel()
        await engine.close()

    app = FastAPI(title="Thinkube budget-forcing server", lifespan=lifespan)
    app.state.server = server

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _error(e.status, e.message, e.param, e.type)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        if first["type"] == "json_invalid":  # its loc is a byte offset, not a field
            return _error(400, f"the request body is not valid JSON ({first['ctx'].get('error', first['msg'])} "
                               f"at byte {first['loc'][-1]})")
        field = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return _error(400, f"{field}: {first['msg']}" if field else first["msg"], field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        cause = e.__cause__
        if isinstance(cause, BaseExceptionGroup):  # raised inside the http middleware's task group
            cause = next(iter(cause.exceptions), cause)
        if isinstance(cause, ApiError):  # the body limit, hit while FastAPI read a chunked body
            return _error(cause.status, f"request body over {config.max_body_bytes} bytes: send a shorter prompt")
        if isinstance(cause, UnicodeDecodeError):
            return _error(400, "the request body is not UTF-8 JSON")
        return _error(e.status_code, str(e.detail), type_="invalid_request_error" if e.status_code < 500 else "server_error")

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
    async def models():
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "owned_by": "thinkube",
                                            "max_model_len": engine.max_model_len}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        return await _serve(req, render_messages([m.model_dump() for m in req.messages], config.fmt), chat=True)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        prompt = req.prompt
        if not prompt.rstrip().endswith(config.fmt.think_start):
            prompt = prompt + config.fmt.think_start + "\n"  # thinking starts where the prompt ends
        return await _serve(req, prompt, chat=False)

    async def _serve(req: BudgetFields, prompt: str, chat: bool):
        server.require_ready()
        prompt_ids = engine.tokenizer.encode(prompt, add_special_tokens=False)
        settings = [server.settings(req, len(prompt_ids), i) for i in range(req.n)]
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        base = {"id": rid, "created": created, "model": engine.name}
        server.metrics.prompt_tokens.inc(len(prompt_ids))
        server.metrics.in_flight.inc()
        if req.stream:
            return StreamingResponse(_stream_body(req, prompt_ids, settings, base, chat),
                                     media_type="text/event-stream")
        try:
            results = await asyncio.gather(*(server.complete(prompt_ids, s) for s in settings))
        finally:
            server.metrics.in_flight.dec()
        choices = []
        for i, (thinking, answer, o) in enumerate(results):
            if chat:
                choices.append({"index": i, "finish_reason": o.finish_reason, "budget": _budget_info(o),
                                 "message": {"role": "assistant", "content": answer, "reasoning_content": thinking}})
            else:
                closing = f"\n{config.fmt.end_of_thinking}\n"
                choices.append({"index": i, "finish_reason": o.finish_reason, "budget": _budget_info(o),
                                "text": thinking + closing + answer, "reasoning_content": thinking,
                                "content": answer})
        return {**base, "object": "chat.completion" if chat else "text_completion", "choices": choices,
                "usage": _usage(len(prompt_ids), [r[2] for r in results])}

    async def _stream_body(req: BudgetFields, prompt_ids, settings, base, chat: bool):
        obj = "chat.completion.chunk" if chat else "text_completion"
        outcomes = []
        try:
            for i, s in enumerate(settings):  # choices one after another: simple, ordered streams
                o = Outcome()
                outcomes.append(o)
                if chat:
                    yield _sse({**base, "object": obj, "choices": [
                        {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
                async for key, delta in server.stream(prompt_ids, s, o):
                    choice = {"index": i, "delta": {key: delta}} if chat else \
                        {"index": i, "text": delta, key: delta}
                    yield _sse({**base, "object": obj, "choices": [{**choice, "finish_reason": None}]})
                final = {"index": i, "finish_reason": o.finish_reason, "budget": _budget_info(o)}
                final.update({"delta": {}} if chat else {"text": ""})
                yield _sse({**base, "object": obj, "choices": [final]})
            if req.include_usage:
                yield _sse({**base, "object": obj, "choices": [], "usage": _usage(len(prompt_ids), outcomes)})
            yield b"data: [DONE]\n\n"
        except ApiError as e:
            yield _sse({"error": {"message": e.message, "type": e.type, "param": e.param, "code": e.status}})
        finally:
            server.metrics.in_flight.dec()

    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    return app

