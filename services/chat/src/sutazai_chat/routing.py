"""Which backend serves a call: the model catalogue (discovered models, aliases), per-backend slots with a
bounded wait queue, and the choice among healthy backends by weighted least in-flight requests."""

from __future__ import annotations

import asyncio
import contextlib
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
    spec: BackendSpec
    client: ModelClient
    breaker: CircuitBreaker
    queue_size: int
    models: set[str] = field(default_factory=set)  # discovered, or the configured list
    loaded: set[str] = field(default_factory=set)  # models in memory (Ollama /api/ps)
    in_flight: int = 0
    waiting: int = 0
    _freed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def name(self) -> str:
        return self.spec.name

    def load(self) -> float:
        return (self.in_flight + self.waiting + 1) / self.spec.weight

    @contextlib.asynccontextmanager
    async def slot(self, timeout_s: float) -> AsyncIterator[None]:
        """Hold one of the backend's ``concurrency`` slots; wait in a queue of at most ``queue_size``."""
        if self.in_flight >= self.spec.concurrency:
            if self.waiting >= self.queue_size:
                raise QueueFullError(self.name)
            self.waiting += 1
            try:
                async with self._freed:
                    await asyncio.wait_for(
                        self._freed.wait_for(lambda: self.in_flight < self.spec.concurrency), timeout_s
                    )
                    self.in_flight += 1
            except TimeoutError as exc:
                raise QueueFullError(self.name) from exc
            finally:
                self.waiting -= 1
        else:
            self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            async with self._freed:
                self._freed.notify(1)


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
