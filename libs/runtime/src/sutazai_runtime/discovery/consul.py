"""The Consul registry (``CONSUL_HTTP_ADDR`` set), through py-consul's asyncio client ``consul.aio``.

- register: the agent's service endpoint with a gRPC health check on the standard ``grpc.health.v1``
  service every server runs, and ``DeregisterCriticalServiceAfter`` so that a killed instance leaves;
- deregister on stop;
- callers get only passing instances: the view holds every instance with its state from its checks
  (``/v1/health/service/<name>``, all checks passing -> ``passing``), and ``Registry.instances`` and
  ``Upstream`` take the passing ones; the mesh lists the others too, with their real state, as with NATS KV;
- external services (the mesh's register) get an HTTP check on ``/health`` and no automatic deregistration:
  they stay until DELETE, as the REST answer says;
- watch with blocking queries (``index``, ``wait``): one loop over the catalog's service names, and one per
  name over its instances. Each answer replaces that name's instances in the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import consul
import consul.aio

from sutazai_runtime.discovery.model import CRITICAL, PASSING, Instance
from sutazai_runtime.discovery.registry import Registry

log = logging.getLogger(__name__)

EXTERNAL_TAG = "sutazai-external"


def parse_consul_addr(addr: str) -> tuple[str, int, str]:
    """``CONSUL_HTTP_ADDR`` (``host:port`` or ``http(s)://host:port``) -> (host, port, scheme)."""
    if "://" not in addr:
        addr = "http://" + addr
    parts = urlsplit(addr)
    if not parts.hostname:
        raise ValueError(f"CONSUL_HTTP_ADDR is not host:port: {addr!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 8500), parts.scheme or "http"


def instance_from_entry(entry: dict[str, Any]) -> Instance:
    """One element of ``/v1/health/service/<name>`` as an ``Instance``."""
    service = entry["Service"]
    node = entry.get("Node") or {}
    checks = entry.get("Checks") or []
    state = PASSING if all(c.get("Status") == "passing" for c in checks) else CRITICAL
    tags = tuple(service.get("Tags") or ())
    return Instance(
        id=service["ID"], name=service["Service"], address=service.get("Address") or node.get("Address", ""),
        port=int(service.get("Port") or 0), tags=tuple(t for t in tags if t != EXTERNAL_TAG),
        metadata=dict(service.get("Meta") or {}), state=state, external=EXTERNAL_TAG in tags,
    )


class ConsulRegistry(Registry):
    kind = "consul"

    def __init__(self, addr: str, *, token: str | None = None, wait_s: int = 30, check_interval_s: int = 2,
                 deregister_after: str = "30s") -> None:
        super().__init__()
        host, port, scheme = parse_consul_addr(addr)
        self.addr = f"{scheme}://{host}:{port}"
        # The HTTP timeout must outlast a blocking query's wait.
        self._client = consul.aio.Consul(host=host, port=port, scheme=scheme, token=token,
                                         connections_timeout=wait_s + 10)
        self._wait = f"{wait_s}s"
        self._check_interval = f"{check_interval_s}s"
        self._deregister_after = deregister_after
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._mine: set[str] = set()

    async def start(self) -> None:
        index, services = await self._client.catalog.services()
        for name in services:
            await self._load(name)
        self._tasks["*"] = asyncio.create_task(self._watch_catalog(index))

    async def _load(self, name: str) -> str | None:
        index, entries = await self._client.health.service(name)
        self.view.replace(name, [instance_from_entry(e) for e in entries])
        if name not in self._tasks:
            self._tasks[name] = asyncio.create_task(self._watch_service(name, index))
        return index  # type: ignore[no-any-return]

    async def _watch_catalog(self, index: str | None) -> None:
        while True:
            try:
                index, services = await self._client.catalog.services(index=index, wait=self._wait)
                for name in services:
                    if name not in self._tasks:
                        await self._load(name)
                for name in self.view.names():
                    if name not in services:
                        self.view.replace(name, [])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consul catalog watch failed: %s", exc)
                await asyncio.sleep(1.0)

    async def _watch_service(self, name: str, index: str | None) -> None:
        while True:
            try:
                index, entries = await self._client.health.service(name, index=index, wait=self._wait)
                self.view.replace(name, [instance_from_entry(e) for e in entries])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consul watch of %s failed: %s", name, exc)
                await asyncio.sleep(1.0)

    async def register(self, instance: Instance) -> None:
        check = consul.Check.grpc(instance.target, self._check_interval, timeout="1s",
                                  deregister=self._deregister_after)
        await self._client.agent.service.register(
            instance.name, service_id=instance.id, address=instance.address, port=instance.port,
            tags=list(instance.tags), meta=dict(instance.metadata), check=check,
            weights={"Passing": instance.weight, "Warning": 1},
        )
        self._mine.add(instance.id)

    async def set_state(self, instance_id: str, state: str) -> None:
        return None  # Consul's own gRPC health check sees the state

    async def register_external(self, instance: Instance) -> None:
        url = instance.metadata.get("health_url") or f"http://{instance.target}/health"
        check = consul.Check.http(url, "10s", timeout="2s")  # no deregistration: it stays until DELETE
        await self._client.agent.service.register(
            instance.name, service_id=instance.id, address=instance.address, port=instance.port,
            tags=[*instance.tags, EXTERNAL_TAG], meta=dict(instance.metadata), check=check,
        )

    async def deregister(self, instance_id: str) -> bool:
        self._mine.discard(instance_id)
        found = await self._client.agent.service.deregister(instance_id)
        self.view.remove(instance_id)
        return bool(found)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        with contextlib.suppress(Exception):
            await self._client.http.close()
