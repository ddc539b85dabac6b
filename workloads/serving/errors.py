"""Every failure the server reports is an OpenAI error object,
{"error": {"message", "type", "param", "code"}}: refused requests, invalid bodies, bodies
over the size limit, and errors in the middle of a stream."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkube.bodylimit import BodyTooLarge
from thinkube.http_errors import field_of, unreadable_body


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.type = status, message, param, type_

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.status}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body over {limit} bytes: send a shorter prompt")


def add_error_handlers(app: FastAPI, max_body_bytes: int) -> None:
    """Turn what FastAPI and Starlette raise into OpenAI error objects."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        if first["type"] == "json_invalid":  # its loc is a byte offset, not a field
            return ApiError(
                400,
                f"the request body is not valid JSON ({first['ctx'].get('error', first['msg'])} "
                f"at byte {first['loc'][-1]})",
            ).response()
        field = field_of(first["loc"])
        return ApiError(400, f"{field}: {first['msg']}" if field else first["msg"], field).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        cause = unreadable_body(e)
        if isinstance(cause, BodyTooLarge):
            return too_large(max_body_bytes).response()
        if isinstance(cause, UnicodeDecodeError):
            return ApiError(400, "the request body is not UTF-8 JSON").response()
        return ApiError(
            e.status_code, str(e.detail), type_="invalid_request_error" if e.status_code < 500 else "server_error"
        ).response()
