"""Refuse request bodies over a size limit before anything reads them (pure ASGI: no per-request
overhead beyond a header look-up)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        """``overrides`` maps a path prefix to its own limit (document uploads take more than JSON calls)."""
        self.app = app
        self.default_bytes = max_bytes
        self.overrides = tuple((overrides or {}).items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.default_bytes
        for prefix, limit in self.overrides:
            if scope["path"].startswith(prefix):
                max_bytes = limit
                break
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > max_bytes:
                    await self._refuse(send, max_bytes)
                    return
                break
        received = 0
        refused = False

        async def limited_receive() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives; past the limit we answer
            # 413 ourselves and tell the app the client left, so it stops reading and its reply is dropped.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    if not refused:
                        refused = True
                        await self._refuse(send, max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send: Send, max_bytes: int) -> None:
        body = json.dumps(
            {"type": "about:blank", "title": "Content Too Large", "status": 413,
             "detail": f"the request body exceeds {max_bytes} bytes"}
        ).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
