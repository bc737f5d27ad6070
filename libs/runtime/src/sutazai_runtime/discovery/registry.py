"""The registry's interface and its in-memory view.

Every backend keeps a ``RegistryView`` current from its watch (NATS KV watcher, Consul blocking queries)
and calls listeners on each change; callers read the view (no I/O), so nothing on the request path
asks the registry. ``register`` keeps the instance alive until ``deregister`` (a heartbeat for NATS KV, a
gRPC health check for Consul).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from sutazai_runtime.discovery.model import Instance

log = logging.getLogger(__name__)

Listener = Callable[[list[Instance]], None]


class RegistryView:
    """Instances by service name, and listeners per name (``"*"``: every change)."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, Instance]] = {}
        self._listeners: dict[str, list[Listener]] = {}

    def names(self) -> list[str]:
        return sorted(n for n, instances in self._by_name.items() if instances)

    def instances(self, name: str) -> list[Instance]:
        return sorted(self._by_name.get(name, {}).values(), key=lambda i: i.id)

    def all(self) -> list[Instance]:
        return sorted((i for m in self._by_name.values() for i in m.values()), key=lambda i: (i.name, i.id))

    def find(self, instance_id: str) -> Instance | None:
        for instances in self._by_name.values():
            if instance_id in instances:
                return instances[instance_id]
        return None

    def put(self, instance: Instance) -> None:
        current = self._by_name.setdefault(instance.name, {})
        if current.get(instance.id) == instance:
            return
        if instance.id not in current:
            log.info("instance up: %s %s at %s", instance.name, instance.id, instance.target)
        current[instance.id] = instance
        self._notify(instance.name)

    def remove(self, instance_id: str) -> Instance | None:
        for name, instances in self._by_name.items():
            gone = instances.pop(instance_id, None)
            if gone is not None:
                log.info("instance gone: %s %s", name, instance_id)
                self._notify(name)
                return gone
        return None

    def replace(self, name: str, instances: list[Instance]) -> None:
        """Set ``name``'s instances to exactly ``instances`` (Consul's answers are whole lists)."""
        new = {i.id: i for i in instances}
        if self._by_name.get(name, {}) == new:
            return
        self._by_name[name] = new
        self._notify(name)

    def subscribe(self, name: str, listener: Listener) -> None:
        """``listener(instances)`` now and after every change of ``name``'s instances."""
        self._listeners.setdefault(name, []).append(listener)
        if name != "*":
            listener(self.instances(name))

    def _notify(self, name: str) -> None:
        instances = self.instances(name)
        for listener in (*self._listeners.get(name, ()), *self._listeners.get("*", ())):
            try:
                listener(instances)
            except Exception:
                log.exception("registry listener failed")


class Registry(ABC):
    """A service registry. ``start`` loads the current instances and begins watching."""

    kind: str = "registry"

    def __init__(self) -> None:
        self.view = RegistryView()

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def register(self, instance: Instance) -> None:
        """Announce ``instance`` and keep it announced (heartbeat or health check) until deregistered."""

    @abstractmethod
    async def set_state(self, instance_id: str, state: str) -> None:
        """Mark an instance this process registered as passing or critical (its health changed)."""

    @abstractmethod
    async def deregister(self, instance_id: str) -> bool: ...

    @abstractmethod
    async def close(self) -> None:
        """Stop watching and heartbeating (does not deregister)."""

    def instances(self, name: str, *, passing_only: bool = True) -> list[Instance]:
        found = self.view.instances(name)
        return [i for i in found if i.passing] if passing_only else found

    def subscribe(self, name: str, listener: Listener) -> None:
        self.view.subscribe(name, listener)
