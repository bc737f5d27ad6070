"""A server announcing itself: the registry entry of this process's gRPC instance."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from sutazai_runtime import __version__
from sutazai_runtime.discovery.model import CRITICAL, PASSING, Instance
from sutazai_runtime.discovery.registry import Registry

if TYPE_CHECKING:
    from sutazai_runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


def instance_for(name: str, settings: ServiceSettings, port: int) -> Instance:
    host = settings.advertise_host or settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    instance_id = settings.instance_id or f"{name}-{socket.gethostname()}-{port}"
    return Instance(
        id=instance_id, name=name, address=host, port=port, tags=tuple(settings.tags),
        metadata={"version": __version__, "zone": settings.zone, "weight": str(settings.weight),
                  "metrics_port": str(settings.metrics_port)},
        state=CRITICAL,  # until the first round of dependency probes passes
    )


class Announcer:
    """Registers on start, follows the health state, deregisters on stop. Registry failures are logged,
    never fatal: a service keeps serving its current callers while the registry is away."""

    def __init__(self, registry: Registry, instance: Instance) -> None:
        self.registry = registry
        self.instance = instance

    async def start(self) -> None:
        await self.registry.register(self.instance)
        log.info("registered %s (%s) with %s", self.instance.id, self.instance.target, self.registry.kind)

    async def serving(self, serving: bool) -> None:
        try:
            await self.registry.set_state(self.instance.id, PASSING if serving else CRITICAL)
        except Exception as exc:
            log.warning("could not update the registry: %s", exc)

    async def stop(self) -> None:
        try:
            await self.registry.deregister(self.instance.id)
            log.info("deregistered %s", self.instance.id)
        except Exception as exc:
            log.warning("could not deregister %s: %s", self.instance.id, exc)
