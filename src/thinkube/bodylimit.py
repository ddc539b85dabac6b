"""A request body size limit for the project's ASGI apps, enforced while the body arrives.

Both the declared size (Content-Length) and the streamed size (chunked bodies, which carry
none) count, so a large upload is refused before it is read whole. Each app renders the
refusal in its own error shape (OpenAI errors for model servers, problem+json for the
control plane).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


class BodyLimit:
    """ASGI middleware: `render(limit)` is the response for a body over `limit` bytes.

    Raised inside a FastAPI handler's body read, BodyTooLarge reaches the app's exception
    handlers as the cause of an HTTPException: apps check for it there as well.
    """

    def __init__(self, app, limit: int, render: Callable[[int], Response]):
        self.app, self.limit, self.render = app, limit, render

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.render(self.limit)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await self.render(self.limit)(scope, receive, send)
