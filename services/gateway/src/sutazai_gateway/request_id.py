"""``X-Request-ID``: the client's (when it is a sane token) or a new one, echoed on the response and put on
every log line written while the request is served (``sutazai_runtime.logging.REQUEST_ID``). Pure ASGI,
outermost, so refusals by the other middleware (413, 429) carry it too."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sutazai_runtime.logging import REQUEST_ID

HEADER = b"x-request-id"
# What a client may choose: short, and nothing that could forge a log line or a header.
_ACCEPTED = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        # 32 random hex digits (uuid4().hex's shape without building a UUID object per request)
        raw = given if given is not None and _ACCEPTED.match(given) else os.urandom(16).hex().encode()
        request_id = raw.decode()
        # Not reset afterwards, on purpose: the server runs each request in a task of its own (its context a
        # copy), and an unhandled error is logged and answered by Starlette's ServerErrorMiddleware, outside
        # this middleware, after the exception left it: that line and that 500 must still carry the id
        # (problems._unhandled adds the header).
        REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, raw)]
            await send(message)

        await self.app(scope, receive, send_with_id)
