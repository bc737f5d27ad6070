"""Credentials that stop working everywhere at once: a revoked API key, a disabled or deleted user.

The gateway process that makes the change drops the credential from its own cache at once and announces it
on NATS; every gateway process and instance serving the same port (``subject``) drops it from its cache when
the announcement arrives, so its next use is verified against the database and refused. A lost announcement
(NATS away) leaves the cache's TTL as the bound. Same pattern as the breaker reset in ``main.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client as NATS

from sutazai_gateway.auth.service import Authenticator

log = logging.getLogger(__name__)


def revocation_subject(port: int) -> str:
    return f"sutazai.gateway.{port}.credentials.revoked"


class Revocations:
    def __init__(self, nc: NATS, subject: str, auth: Authenticator) -> None:
        self._nc = nc
        self._subject = subject
        self._auth = auth
        self._subscription: Any = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(self._subject, cb=self._received)

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def api_key(self, prefix: str) -> None:
        await self._announce({"api_key": prefix})

    async def user(self, user_id: str) -> None:
        await self._announce({"user": user_id})

    async def _announce(self, what: dict[str, str]) -> None:
        self._apply(what)  # here at once, whatever NATS does
        try:
            await self._nc.publish(self._subject, json.dumps(what).encode())
            await self._nc.flush(timeout=2)
        except Exception as exc:
            log.warning("could not announce a revocation; other gateway processes keep the credential until "
                        "their cache entry expires", extra={"error": str(exc)})

    async def _received(self, msg: Any) -> None:
        try:
            what = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(what, dict):
            self._apply(what)

    def _apply(self, what: dict[str, Any]) -> None:
        if isinstance(what.get("api_key"), str):
            self._auth.forget_key(what["api_key"])
        if isinstance(what.get("user"), str):
            self._auth.forget_user(what["user"])
