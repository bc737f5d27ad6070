"""The upstream services as the gateway calls them: one ``sutazai_runtime`` ``Upstream`` per service, its
instances from the registry's watch (or the static ``*_ADDR`` settings), balanced and protected per call
(breaker, outlier ejection, retries of idempotent calls within a budget, concurrency cap, deadlines).

``upstream.stub(StubClass)`` is made once and reused by every request. Health checks go to each instance
directly (``plain_stubs``), bypassing the breaker, so the monitor keeps seeing the real services.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypeVar

from sutazai_runtime.balancing import make_strategy
from sutazai_runtime.discovery.registry import Registry
from sutazai_runtime.discovery.settings import open_registry
from sutazai_runtime.resilience import BreakerPolicy, CircuitBreaker, OutlierPolicy
from sutazai_runtime.resilience.upstream import Upstream as BalancedUpstream
from sutazai_runtime.resilience.upstream import UpstreamPolicy

from sutazai_gateway.config import Settings

T = TypeVar("T")


# The hot unary methods sent as messages on one long-lived stream per instance (``sutazai_runtime.multiplex``):
# a memory search is the platform's millisecond read that crosses two services.
MULTIPLEXED: dict[str, frozenset[str]] = {"memory": frozenset({"SearchMemories"})}


def policy_for(name: str, settings: Settings) -> UpstreamPolicy:
    strategy = settings.lb_strategies.get(name, settings.lb_strategy)
    make_strategy(strategy)  # fail at start-up on an unknown name
    return UpstreamPolicy(
        strategy=strategy, timeout_s=settings.upstream_timeout_s, per_try_timeout_s=settings.per_try_timeout_s,
        max_concurrent=settings.upstream_max_concurrent,
        breaker=BreakerPolicy(
            consecutive_failures=settings.breaker_failures, failure_rate=settings.breaker_failure_rate,
            minimum_requests=settings.breaker_minimum_requests, window_s=settings.breaker_window_s,
            open_s=settings.breaker_recovery_s, half_open_probes=settings.breaker_half_open_probes,
        ),
        outlier=OutlierPolicy(consecutive_failures=settings.outlier_failures,
                              base_ejection_s=settings.outlier_ejection_s),
        multiplexed=MULTIPLEXED.get(name, frozenset()),
    )


class Upstream:
    """One upstream service: ``stub(cls)`` for calls, ``breaker`` and ``instances()`` for the health views."""

    def __init__(self, name: str, balanced: BalancedUpstream) -> None:
        self.name = name
        self.balanced = balanced

    @property
    def breaker(self) -> CircuitBreaker:
        return self.balanced.breaker

    def stub(self, stub_class: type[T]) -> T:
        return self.balanced.stub(stub_class)

    def plain_stubs(self, stub_class: type[T]) -> list[tuple[str, T]]:
        return self.balanced.plain_stubs(stub_class)

    def instances(self) -> list[dict[str, Any]]:
        return self.balanced.instances()

    def snapshot(self) -> dict[str, Any]:
        return self.balanced.snapshot()


class Upstreams:
    def __init__(self, names: list[str], registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self._by_name = {
            name: Upstream(name, BalancedUpstream(name, registry=registry, policy=policy_for(name, settings)))
            for name in names
        }

    def __getitem__(self, name: str) -> Upstream:
        """The upstream called ``name``; KeyError for anything else."""
        return self._by_name[name]

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._by_name.values())

    async def close(self) -> None:
        await asyncio.gather(*(u.balanced.close() for u in self._by_name.values()), return_exceptions=True)


async def open_gateway_registry(settings: Settings) -> Registry:
    """The registry the upstreams resolve from; in static mode, the ``*_addr`` settings."""
    return await open_registry(settings.discovery, client_name="sutazai-gateway",
                               static_addresses=settings.upstream_addresses())
