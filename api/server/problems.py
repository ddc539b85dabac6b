"""Errors as RFC 7807 problem details: {"type", "title", "status", "detail", "field"}.

`field` names the offending field (dotted, as in the resource) or is null. The API server's
own validation failures keep their field: its Status causes carry it.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkube.bodylimit import BodyTooLarge
from thinkube.http_errors import field_of, unreadable_body

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://thinkube.dev/problems/"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Problem(Exception):
    def __init__(self, status: int, slug: str, detail: str, field: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.slug, self.detail, self.field = status, slug, detail, field
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "type": TYPE_BASE + self.slug,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "field": self.field,
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers, media_type=MEDIA_TYPE)


def unauthorized(detail: str) -> Problem:
    # The scheme in WWW-Authenticate tells clients what to send (RFC 6750).
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="thinkube"'})


def too_large(limit: int) -> JSONResponse:
    return Problem(413, "body-too-large", f"request body over {limit} bytes").response()


def from_kube(status: int, body: Mapping) -> Problem:
    """The API server's Status as a problem, keeping its reason and the first cause's field."""
    reason = str(body.get("reason") or "").strip()
    slug = "".join("-" + c.lower() if c.isupper() else c for c in reason).lstrip("-") or "kubernetes-error"
    causes = (body.get("details") or {}).get("causes") or []
    field = next((c.get("field") for c in causes if c.get("field")), None)
    detail = str(body.get("message") or reason or f"the Kubernetes API answered {status}")
    return Problem(status if 400 <= status < 600 else 502, slug, detail, field)


def install(app: FastAPI) -> None:
    """Every error the app returns is problem+json, including FastAPI's and Starlette's own."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, e: Problem):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        if first["type"] == "json_invalid":  # its location is a byte offset, not a field
            return Problem(400, "invalid-json", f"the request body is not valid JSON: {first['msg']}").response()
        if tuple(first["loc"]) == ("body",) and first["type"] in ("model_attributes_type", "dict_type", "missing"):
            detail = "the request body must be a JSON object, sent with Content-Type: application/json"
            return Problem(422, "invalid-body", detail).response()
        where = field_of(first["loc"])
        where = where if where is None or first["loc"][0] == "body" else where.split(".", 1)[-1]
        message = first["msg"].removeprefix("Value error, ")
        return Problem(422, "invalid-field", f"{where}: {message}" if where else message, where).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        cause = unreadable_body(e)
        if isinstance(cause, BodyTooLarge):
            return too_large(cause.limit)
        if isinstance(cause, UnicodeDecodeError):
            return Problem(400, "invalid-json", "the request body is not UTF-8 JSON").response()
        slug = {404: "not-found", 405: "method-not-allowed"}.get(e.status_code, "http-error")
        return Problem(e.status_code, slug, str(e.detail)).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        return Problem(500, "internal-error", "the control plane failed; see its log for the request id").response()
