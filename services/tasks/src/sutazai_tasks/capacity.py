"""How much agent work a worker keeps in flight per model: at most what chat says the model's backends
take from background callers (``ChatService.GetCapacity``), refreshed periodically.

A task over the limit is not claimed: the worker puts its message back in JetStream with a delay
(``Worker``), so a backlog waits in the queue, not in retries. Several workers share a model: each may hold
what it holds now plus what chat reports free (``background_limits``), so together they stay near the
model's capacity; chat's own short wait for a slot absorbs the overlap of two refreshes, and what it cannot
absorb comes back as RESOURCE_EXHAUSTED, which also puts the task back without spending an attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

import grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.resilience.upstream import stub_of

log = logging.getLogger(__name__)

UNKNOWN = "<unknown>"  # the key of work whose model is not known yet (an agent never fetched by this worker)


class ModelSlots:
    """A counting semaphore per model whose sizes change when chat reports new capacity. No I/O."""

    def __init__(self, default_limit: int = 1) -> None:
        self._default = max(1, default_limit)
        self._limits: dict[str, int] = {}
        self._held: defaultdict[str, int] = defaultdict(int)
        self._changed = asyncio.Event()  # set (and replaced) whenever a slot frees or the limits change

    def limit(self, model: str) -> int:
        return self._limits.get(model, self._default)

    def held(self, model: str) -> int:
        return self._held[model]

    def set_limits(self, limits: dict[str, int]) -> None:
        self._limits = {m: max(0, n) for m, n in limits.items()}
        self._wake()

    def try_acquire(self, model: str) -> bool:
        if self._held[model] < self.limit(model):
            self._held[model] += 1
            return True
        return False

    async def acquire(self, model: str, wait_s: float) -> bool:
        """A slot on ``model`` within ``wait_s``, or False."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self.try_acquire(model):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def release(self, model: str) -> None:
        self._held[model] = max(0, self._held[model] - 1)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def background_limits(reply: chat_pb2.CapacityResponse, held: Callable[[str], int]) -> dict[str, int]:
    """Per model: what this worker holds plus what is free in chat, at most the model's background slots.
    A model with no capacity reported (every backend's breaker open) gets one, so its errors surface (and
    count) instead of its tasks waiting for ever."""
    limits: dict[str, int] = {}
    for m in reply.models:
        if m.background_slots <= 0:
            limits[m.model] = 1
            continue
        free = max(0, m.background_slots - m.background_in_flight - m.waiting)
        limits[m.model] = min(m.background_slots, held(m.model) + free)
    return limits


async def watch_capacity(chat: grpc.aio.Channel, slots: ModelSlots, *, every_s: float = 2.0) -> None:
    """Keep ``slots`` sized by chat's capacity. While chat does not answer, the last sizes stay."""
    stub = stub_of(chat, chat_pb2_grpc.ChatServiceStub)
    while True:
        try:
            reply = await stub.GetCapacity(chat_pb2.CapacityRequest(), timeout=min(5.0, every_s * 2))
            slots.set_limits(background_limits(reply, slots.held))
        except grpc.aio.AioRpcError as exc:
            log.debug("chat capacity unknown (%s); keeping the last limits", exc.code().name)
        await asyncio.sleep(every_s)
