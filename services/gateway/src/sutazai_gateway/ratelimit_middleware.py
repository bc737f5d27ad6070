"""The rate limit of every request, before routing (pure ASGI). Over the limit: a 429 problem with
``Retry-After``; the ``RateLimit-*`` headers on every limited response, allowed or not.

The caller is identified here (through the same credential cache as ``deps.current_user``), and the outcome
is left in the request's state, so the route's dependency does not verify the credential again."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sutazai_gateway.auth import api_keys
from sutazai_gateway.auth.service import AuthError
from sutazai_gateway.problems import PROBLEM_JSON

IDENTIFIED = "sutazai.identified"  # request state: (credential, Identity or AuthError)
# Answer from the process alone (liveness and the background health picture): never counted.
EXEMPT_PATHS = frozenset({"/health", "/health-emergency"})


def credential_of(scope: Scope) -> str | None:
    """``Authorization: Bearer <token or API key>``, else ``X-API-Key: <key>`` (the one reading of a credential;
    ``deps.presented_credential`` uses it too)."""
    key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                return rest.strip()
        elif name == b"x-api-key":
            key = value.decode("latin-1").strip() or None
    return key


class RateLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "gateway", None)
        limiter = state.limiter if state is not None else None
        if limiter is None:  # limits off, or before the lifespan ran
            await self.app(scope, receive, send)
            return
        policy = state.limit_policy
        credential = credential_of(scope)
        identity = None
        if credential is not None:
            try:
                identity = await state.auth.identify(credential)
            except AuthError as exc:
                scope.setdefault("state", {})[IDENTIFIED] = (credential, exc)
            except Exception:  # the database, say: the route's own check answers for it
                pass
            else:
                scope.setdefault("state", {})[IDENTIFIED] = (credential, identity)
        if identity is not None:
            prefix = None
            if policy.has_key_overrides and (parsed := api_keys.parse_key(credential or "")):
                prefix = parsed.prefix
            target = policy.for_caller(identity.user_id, identity.is_admin, prefix, scope["method"], scope["path"])
        else:
            client = scope.get("client")
            target = policy.for_address(client[0] if client else "unknown")
        if target is None:
            await self.app(scope, receive, send)
            return
        decision = await limiter.hit(target.item, target.bucket, target.who)
        if decision is None:  # Redis away: let it through
            await self.app(scope, receive, send)
            return
        headers = decision.headers()
        if not decision.allowed:
            await _refuse(scope, send, headers, decision.reset_after_s, target.bucket)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(scope: Scope, send: Send, headers: list[tuple[bytes, bytes]], retry_after: int, bucket: str
                  ) -> None:
    problem: dict[str, Any] = {
        "type": "about:blank", "title": "Too Many Requests", "status": 429,
        "detail": f"rate limit reached ({bucket}); retry in {retry_after} s", "instance": scope["path"],
    }
    body = orjson.dumps(problem)
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", PROBLEM_JSON.encode()), (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % retry_after), *headers]})
    await send({"type": "http.response.body", "body": body})
