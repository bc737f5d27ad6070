"""Refuse U+0000 (NUL) in a request's path, query or JSON/form body with a 422 problem, before any route runs.

PostgreSQL cannot store NUL in ``text`` or ``jsonb``, so such a value reaching a store (a username at
login, a task payload, an agent field) was a 500; schemathesis found it. One guard covers every route,
including those added later. Pure ASGI; it sits inside ``BodySizeLimit``, so it never buffers more
than the size limit allows.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# "\u0000" in JSON text, unless its backslash is itself escaped ("\\u0000" is a backslash, then "u0000").
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_TAIL = 64  # bytes kept between chunks, so an escape split across two chunks is still seen


class RefuseNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await _refuse(send, "query" if b"%00" in scope.get("query_string", b"") else "path")
            return
        if not _textual(scope):
            # Files (multipart uploads: a PDF holds NUL bytes) go through untouched; their text is checked
            # where it is extracted.
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        tail = b""
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            chunk = tail + message.get("body", b"")
            if b"\x00" in chunk or _ESCAPED_NUL.search(chunk):
                await _refuse(send, "body")
                return
            tail = chunk[-_TAIL:]
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)


def _textual(scope: Scope) -> bool:
    """A JSON or form body, or none declared (FastAPI reads an undeclared body as JSON)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind.endswith(b"json") or kind == b"application/x-www-form-urlencoded"
    return True


async def _refuse(send: Send, location: str) -> None:
    body = json.dumps({
        "type": "about:blank", "title": "Unprocessable Entity", "status": 422,
        "detail": "text must not contain U+0000 (NUL)",
        "errors": [{"location": [location], "message": "contains U+0000 (NUL)", "type": "nul_character"}],
    }).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
