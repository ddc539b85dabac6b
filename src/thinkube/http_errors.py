"""What the project's two HTTP apps (the model server, the control plane) read out of FastAPI's
errors before answering each in its own shape (OpenAI error objects, problem+json)."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from thinkube.bodylimit import BodyTooLarge


def field_of(loc: tuple | list) -> str | None:
    """'spec.training.epochs' from a pydantic location; None for the body as a whole."""
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def unreadable_body(e: HTTPException) -> BodyTooLarge | UnicodeDecodeError | None:
    """Why FastAPI could not read the request's body, when that is what `e` stands for: the body
    limit, hit while a chunked body was read, or a body that is not UTF-8."""
    cause = e.__cause__
    if isinstance(cause, BaseExceptionGroup):  # raised inside a middleware's task group
        cause = next(iter(cause.exceptions), cause)
    return cause if isinstance(cause, (BodyTooLarge, UnicodeDecodeError)) else None
