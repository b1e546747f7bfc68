"""Bounds on every request body: its size, and how long the server waits for each piece.

uvicorn has no request read timeout of its own (its keep-alive timeout only covers idle
connections between requests), so a client that starts a body and stalls would hold its
connection, and whatever was parsed so far, for as long as it liked. This ASGI middleware
wraps ``receive``: a piece that does not arrive within ``read_timeout`` ends the request with
408, and a body past ``max_body_bytes`` ends it with 413, before any route or form parser has
buffered it. Both are raised as Starlette ``HTTPException``, so the app's handler answers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

__all__ = ["RequestLimits"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLimits:
    """Refuse bodies larger than ``max_body_bytes``; cut off a body stalled ``read_timeout``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> MutableMapping[str, Any]:
            nonlocal received
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"request body stalled for more than {self.read_timeout:g} seconds",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(
                        413,
                        f"body larger than {self.max_body_bytes} bytes",
                        headers={"Connection": "close"},
                    )
            return message

        await self.app(scope, bounded_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"error": f"body larger than {self.max_body_bytes} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None
