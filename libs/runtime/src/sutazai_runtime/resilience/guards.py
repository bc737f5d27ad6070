"""What a service shows of its circuit breakers (``Diagnostics.GetBreakers``) and lets an admin reset: one
``Guard`` per breaker, made from an ``Upstream`` (a service it calls) or a bare ``CircuitBreaker`` (chat's model
backends). The gateway lists its own breakers and, through Diagnostics, every instance's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sutazai_runtime.resilience.breaker import CircuitBreaker

if TYPE_CHECKING:
    from sutazai_runtime.resilience.upstream import Upstream


@dataclass(frozen=True, slots=True)
class Guard:
    name: str
    kind: str  # "upstream" or "backend"
    snapshot: Callable[[], dict[str, Any]]
    reset: Callable[[], None]


def upstream_guard(upstream: Upstream) -> Guard:
    return Guard(upstream.name, "upstream", upstream.snapshot, upstream.breaker.reset)


def breaker_guard(breaker: CircuitBreaker, in_flight: Callable[[], int] = lambda: 0) -> Guard:
    """A breaker guarding one server (no instances to eject): its snapshot with ``in_flight`` and an empty
    ``ejected_instances``, the same shape as an upstream's."""

    def snapshot() -> dict[str, Any]:
        return {**breaker.snapshot(), "in_flight": in_flight(), "ejected_instances": []}

    return Guard(breaker.name, "backend", snapshot, breaker.reset)
