"""Which backend serves a call: the model catalogue (discovered models, aliases), per-backend slots with a
bounded wait queue, and the choice among healthy backends by weighted least in-flight requests."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from sutazai_runtime.resilience import CircuitBreaker

from sutazai_chat.backend_config import BackendSpec
from sutazai_chat.backends import ModelClient
from sutazai_chat.errors import ModelNotFoundError


class QueueFullError(Exception):
    """This backend is at its concurrency limit and its wait queue is full (or the wait timed out)."""


@dataclass(eq=False)
class Backend:
    """One model server and its slots. Two kinds of caller share the ``concurrency`` slots:

    - interactive (a person: REST chat, the OpenAI and Ollama routes) may take any free slot, and while one
      waits, no background call takes a slot before it;
    - background (task workers, ``sutazai-priority: background``) may hold at most ``background_limit``
      slots, the rest being kept for interactive calls (``interactive_share`` of them, at least one when the
      backend has more than one slot), and wait in a queue of their own.
    """

    spec: BackendSpec
    client: ModelClient
    breaker: CircuitBreaker
    queue_size: int  # interactive callers that may wait for a slot
    models: set[str] = field(default_factory=set)  # discovered, or the configured list
    loaded: set[str] = field(default_factory=set)  # models in memory (Ollama /api/ps)
    interactive_share: float = 0.0
    background_queue_size: int = 64
    in_flight: int = 0
    waiting: int = 0
    background_in_flight: int = 0
    background_waiting: int = 0
    _freed: asyncio.Event = field(default_factory=asyncio.Event)  # set (and replaced) when a slot frees

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def background_limit(self) -> int:
        concurrency = self.spec.concurrency
        reserved = min(concurrency - 1, math.ceil(concurrency * self.interactive_share)) if concurrency > 1 else 0
        return max(1, concurrency - reserved)

    def load(self) -> float:
        return (self.in_flight + self.waiting + self.background_waiting + 1) / self.spec.weight

    def _free_for(self, background: bool) -> bool:
        if self.in_flight >= self.spec.concurrency:
            return False
        return not background or (self.background_in_flight < self.background_limit and self.waiting == 0)

    @contextlib.asynccontextmanager
    async def slot(self, timeout_s: float, *, background: bool = False) -> AsyncIterator[None]:
        """Hold one of the backend's slots; wait at most ``timeout_s`` in the caller's queue, or QueueFullError."""
        if not self._free_for(background):
            await self._wait(timeout_s, background)
        self.in_flight += 1
        self.background_in_flight += background
        try:
            yield
        finally:
            self.in_flight -= 1
            self.background_in_flight -= background
            self._freed.set()
            self._freed = asyncio.Event()

    async def _wait(self, timeout_s: float, background: bool) -> None:
        if (self.background_waiting >= self.background_queue_size) if background else (self.waiting >= self.queue_size):
            raise QueueFullError(self.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if background:
            self.background_waiting += 1
        else:
            self.waiting += 1
        try:
            while not self._free_for(background):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise QueueFullError(self.name)
                try:
                    await asyncio.wait_for(self._freed.wait(), remaining)
                except TimeoutError as exc:
                    raise QueueFullError(self.name) from exc
        finally:
            if background:
                self.background_waiting -= 1
            else:
                self.waiting -= 1


class Router:
    def __init__(self, backends: Iterable[Backend], aliases: dict[str, str]) -> None:
        self.backends = list(backends)
        self.aliases = dict(aliases)

    def served_models(self) -> list[str]:
        return sorted({m for b in self.backends for m in b.models})

    def available_names(self) -> list[str]:
        served = set(self.served_models())
        return sorted(served | {a for a, target in self.aliases.items() if target in served})

    def resolve(self, name: str) -> str:
        """The served model that ``name`` means, or ModelNotFoundError listing what is available."""
        served = set(self.served_models())
        target = self.aliases.get(name, name)
        if target in served:
            return target
        # Ollama-style names: "smollm2" matches a served "smollm2:latest".
        if ":" not in target and f"{target}:latest" in served:
            return f"{target}:latest"
        raise ModelNotFoundError(name, self.available_names())

    def aliases_of(self, model: str) -> list[str]:
        return sorted(a for a, target in self.aliases.items() if target == model)

    def candidates(self, model: str, exclude: set[str] = frozenset()) -> list[Backend]:  # type: ignore[assignment]
        """Backends serving ``model`` whose breaker lets a call through, best first: a backend that has the
        model loaded first, then by weighted least in-flight requests."""
        usable = [b for b in self.backends
                  if model in b.models and b.name not in exclude and b.breaker.available()]
        return sorted(usable, key=lambda b: (model not in b.loaded, b.load()))

    def serving(self, model: str) -> list[Backend]:
        return [b for b in self.backends if model in b.models]
