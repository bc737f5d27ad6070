"""The mesh's picture of every instance: the registry's view, plus the health of external services (which
run no gRPC health service: the mesh asks their HTTP ``/health``). No gRPC here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import aiohttp
from sutazai_runtime.balancing import Endpoint, make_strategy
from sutazai_runtime.discovery import Instance, Registry

log = logging.getLogger(__name__)

HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"


class Catalog:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._external_state: dict[str, str] = {}
        self._strategies: dict[tuple[str, str], object] = {}
        self._endpoints: dict[str, Endpoint] = {}

    def state(self, instance: Instance) -> str:
        if instance.external:
            return self._external_state.get(instance.id, UNKNOWN)
        return HEALTHY if instance.passing else UNHEALTHY

    def instances(self, name: str = "") -> list[Instance]:
        found = self.registry.view.instances(name) if name else self.registry.view.all()
        return list(found)

    def resolve(self, name: str, strategy: str, key: str = "") -> Instance | None:
        """One healthy instance of ``name`` by ``strategy`` (ValueError for an unknown strategy)."""
        candidates = [i for i in self.instances(name) if self.state(i) == HEALTHY or
                      (i.external and self.state(i) == UNKNOWN)]
        if not candidates:
            return None
        chooser = self._strategies.get((name, strategy))
        if chooser is None:
            chooser = self._strategies[name, strategy] = make_strategy(strategy or "round_robin")
        endpoints = [self._endpoint(i) for i in candidates]
        picked = chooser.pick(endpoints, key or None)  # type: ignore[attr-defined]
        return next(i for i in candidates if i.id == picked.id)

    def _endpoint(self, instance: Instance) -> Endpoint:
        found = self._endpoints.get(instance.id)
        if found is None or found.target != instance.target:
            found = self._endpoints[instance.id] = Endpoint(instance.id, instance.target, instance.weight)
        return found

    async def check_external(self, session: aiohttp.ClientSession, instances: Sequence[Instance]) -> None:
        async def one(instance: Instance) -> None:
            url = instance.metadata.get("health_url") or f"http://{instance.target}/health"
            try:
                async with session.get(url) as response:
                    state = HEALTHY if response.status < 300 else UNHEALTHY
            except (aiohttp.ClientError, TimeoutError, OSError):
                state = UNHEALTHY
            if self._external_state.get(instance.id) != state:
                log.info("external instance %s (%s) is %s", instance.id, url, state)
            self._external_state[instance.id] = state

        await asyncio.gather(*(one(i) for i in instances))

    async def watch_external(self, interval_s: float, timeout_s: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            while True:
                started = time.monotonic()
                external = [i for i in self.registry.view.all() if i.external]
                await self.check_external(session, external)
                await asyncio.sleep(max(0.1, interval_s - (time.monotonic() - started)))
