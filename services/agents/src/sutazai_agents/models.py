"""Which models the chat service serves right now, asked with a short deadline and cached briefly.

The answer is a set of lower-case model names and aliases, or ``None`` when it is not known: chat is
unreachable, slow, or does not implement ``ListModels`` yet. ``None`` makes every agent's status
``unknown`` instead of a guess. Failures are cached for a shorter time than answers, so that the
status recovers quickly once chat comes up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.resilience.upstream import Upstream, stub_of

log = logging.getLogger(__name__)


class ModelCatalog:
    def __init__(
        self, chat: grpc.aio.Channel | Upstream, *, timeout_s: float = 0.5, ttl_s: float = 10.0,
        failure_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = stub_of(chat, chat_pb2_grpc.ChatServiceStub)
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._served: frozenset[str] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._last_error = ""

    async def served(self) -> frozenset[str] | None:
        if self._clock() < self._expires:
            return self._served
        async with self._lock:  # one call to chat at a time; the others take its answer
            if self._clock() < self._expires:
                return self._served
            self._served, ttl = await self._ask()
            self._expires = self._clock() + ttl
            return self._served

    async def _ask(self) -> tuple[frozenset[str] | None, float]:
        try:
            reply = await self._stub.ListModels(chat_pb2.ListModelsRequest(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"
            if error != self._last_error:
                log.warning("cannot tell which models are served; agent status is 'unknown'", extra={"error": error})
                self._last_error = error
            return None, self._failure_ttl_s
        if self._last_error:
            log.info("the chat service lists its models again")
            self._last_error = ""
        names = {m.name.lower() for m in reply.models if m.name}
        names |= {alias.lower() for m in reply.models for alias in m.aliases if alias}
        return frozenset(names), self._ttl_s
