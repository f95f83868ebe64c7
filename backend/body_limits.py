"""Request body limits that hold while the bytes arrive.

A limit read from Content-Length alone lets a chunked body (``Transfer-Encoding: chunked``, no
length declared) through to be read whole: 300 MB of it took the server from 223 MB to 2 GB
before the route could refuse it. ``BodyLimits`` counts the bytes of every ``http.request``
message as the app reads them and stops the request with 413 as soon as it is over its limit;
a declared length over the limit is refused before anything is read. The answer is the API's
usual ``{"detail": "..."}``, whichever way the body came."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes its limit. An HTTPException, so FastAPI's
    body reading lets it through to the app's handler, which answers 413."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"the request body is over its limit of {limit} bytes")


class BodyLimits:
    """Pure ASGI middleware: every request body is limited to ``default`` bytes, a path in
    ``limits`` to its own number (uploads: a larger one, from the settings)."""

    def __init__(self, app: ASGIApp, default: int, limits: dict[str, int]):
        self.app = app
        self.default = default
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _answer(BodyTooLarge(limit), scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside a route (the app's handler answers for routes)
            if started:
                raise
            await _answer(exc, scope, receive, send)


async def _answer(exc: BodyTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"detail": exc.detail}, status_code=413)(scope, receive, send)
