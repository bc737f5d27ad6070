"""Service discovery: one interface (``Registry``), three backends.

- ``NatsKvRegistry`` (default): a JetStream KV bucket with a TTL, heartbeats, a watch;
- ``ConsulRegistry`` (``CONSUL_HTTP_ADDR``): agent registration with a gRPC health check, blocking queries;
- ``StaticRegistry``: addresses from configuration (Kubernetes Service DNS).

Callers read ``registry.view`` (in memory, kept current by the watch); nothing asks the registry per call.
"""

from sutazai_runtime.discovery.model import CRITICAL, PASSING, Instance
from sutazai_runtime.discovery.registry import Registry, RegistryView
from sutazai_runtime.discovery.settings import DiscoverySettings, open_registry

__all__ = ["CRITICAL", "PASSING", "DiscoverySettings", "Instance", "Registry", "RegistryView", "open_registry"]
