"""Static discovery: addresses from configuration (Kubernetes Service DNS, or a fixed list).

Each name maps to ``host:port`` addresses; in Kubernetes one Service name is one address and the
cluster balances behind it. Registration is local to this process (nothing else can see it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sutazai_runtime.discovery.model import Instance
from sutazai_runtime.discovery.registry import Registry


def parse_targets(value: str) -> list[tuple[str, int]]:
    """``"a:1,b:2"`` -> ``[("a", 1), ("b", 2)]``; ValueError names a bad entry."""
    targets = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not host:port: {part!r}")
        targets.append((host.strip("[]"), int(port)))
    return targets


class StaticRegistry(Registry):
    kind = "static"

    def __init__(self, addresses: Mapping[str, Sequence[str] | str] | None = None) -> None:
        super().__init__()
        self._addresses = dict(addresses or {})

    async def start(self) -> None:
        for name, targets in self._addresses.items():
            joined = targets if isinstance(targets, str) else ",".join(targets)
            self.view.replace(name, [
                Instance(id=f"{name}@{host}:{port}", name=name, address=host, port=port)
                for host, port in parse_targets(joined)
            ])

    def add(self, name: str, targets: str) -> None:
        """Addresses a caller knows from its own settings (e.g. the gateway's ``*_ADDR``)."""
        if name not in self._addresses:
            self._addresses[name] = targets
            self.view.replace(name, [Instance(id=f"{name}@{h}:{p}", name=name, address=h, port=p)
                                     for h, p in parse_targets(targets)])

    async def register(self, instance: Instance) -> None:
        self.view.put(instance)

    async def set_state(self, instance_id: str, state: str) -> None:
        instance = self.view.find(instance_id)
        if instance is not None:
            self.view.put(instance.with_state(state))

    async def register_external(self, instance: Instance) -> None:
        self.view.put(instance)

    async def deregister(self, instance_id: str) -> bool:
        return self.view.remove(instance_id) is not None

    async def close(self) -> None:
        return None
