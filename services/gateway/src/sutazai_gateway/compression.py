"""GZip for clients that ask for it (``Accept-Encoding: gzip``), by Starlette's ``GZipMiddleware``; a request
that does not ask goes straight to the app. (Starlette wraps those too, in an ``IdentityResponder`` that
inspects every response: work for nothing on the hot path.) Server-Sent Events are never compressed
(Starlette excludes ``text/event-stream``), so streamed tokens are not held back."""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class GZipWhenAsked:
    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=6)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding":
                    if b"gzip" in value:
                        await self.gzip(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
