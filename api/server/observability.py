"""Health, Prometheus metrics and one JSON access-log line per request, with a request id.

Metrics are labelled by route template (never the raw path, whose names would make
unbounded series); logs carry the caller's name, never the token.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from thinkube.api.server.deps import state

log = logging.getLogger("thinkube.api.access")
REQUEST_ID = "X-Request-ID"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "thinkube_api_requests_total",
            "requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "thinkube_api_request_seconds",
            "request latency by route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.reviews = Counter(
            "thinkube_api_reviews_total", "TokenReviews and SubjectAccessReviews made", registry=self.registry
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").disabled = True  # replaced by the line below, which has the request id
    logging.getLogger("httpx").setLevel(logging.WARNING)


def install(app, metrics: Metrics) -> None:
    @app.middleware("http")
    async def access(request: Request, call_next):
        rid = request.headers.get(REQUEST_ID, "")
        rid = rid if 0 < len(rid) <= 64 and rid.replace("-", "").isalnum() else uuid.uuid4().hex
        request.state.request_id = rid
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID] = rid
            return response
        finally:
            seconds = time.perf_counter() - start
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(seconds)
            fields = {
                "request_id": rid,
                "method": request.method,
                "route": route,
                "status": status,
                "ms": round(seconds * 1000, 1),
                "user": getattr(request.state, "user", None),
            }
            log.log(logging.WARNING if status >= 500 else logging.INFO, "request", extra={"fields": fields})


def router(metrics: Metrics) -> APIRouter:
    out = APIRouter(tags=["health"])

    @out.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict:
        return {"status": "ok"}

    @out.get("/readyz", summary="Readiness: the Kubernetes API answers")
    async def readyz(request: Request):
        if await state(request).kube.ready():
            return {"status": "ready"}
        return JSONResponse({"status": "kubernetes API unreachable"}, 503)

    @out.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return out
