"""Which registry a process uses, and opening it.

``backend``: ``auto`` (the default) is Consul when ``CONSUL_HTTP_ADDR`` is set, else NATS KV;
``static`` takes addresses from configuration only (Kubernetes Service DNS). Every process of one
platform must agree on the bucket, so these settings are shared (prefix ``SUTAZAI_DISCOVERY_``), not
per service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sutazai_runtime.discovery.registry import Registry

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class DiscoverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_DISCOVERY_", extra="ignore", populate_by_name=True,
                                      frozen=True)

    backend: Literal["auto", "nats", "consul", "static"] = "auto"
    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=AliasChoices("SUTAZAI_DISCOVERY_NATS_URL", "NATS_URL"))
    bucket: str = Field("sutazai_registry", pattern=r"^[A-Za-z0-9_-]+$")
    ttl_s: float = Field(6.0, gt=0, le=10.0)
    consul_http_addr: str | None = Field(None, validation_alias=AliasChoices("CONSUL_HTTP_ADDR"))
    consul_http_token: str | None = Field(None, validation_alias=AliasChoices("CONSUL_HTTP_TOKEN"), repr=False)
    consul_deregister_after: str = Field("30s", pattern=r"^\d+[smh]$")
    connect_timeout_s: float = Field(2.0, gt=0)

    def resolved_backend(self) -> Literal["nats", "consul", "static"]:
        if self.backend != "auto":
            return self.backend
        return "consul" if self.consul_http_addr else "nats"


async def open_registry(settings: DiscoverySettings, *, client_name: str = "sutazai-discovery",
                        static_addresses: Mapping[str, str] | None = None) -> Registry:
    """A started registry (its view loaded, its watch running). The caller closes it. ``static_addresses``
    (name -> "host:port[,host:port]") are what the static backend resolves; the others ignore them."""
    backend = settings.resolved_backend()
    registry: Registry
    if backend == "consul":
        from sutazai_runtime.discovery.consul import ConsulRegistry

        if not settings.consul_http_addr:
            raise ValueError("the consul backend needs CONSUL_HTTP_ADDR")
        registry = ConsulRegistry(settings.consul_http_addr, token=settings.consul_http_token,
                                  deregister_after=settings.consul_deregister_after)
    elif backend == "static":
        from sutazai_runtime.discovery.static import StaticRegistry

        registry = StaticRegistry(static_addresses)
    else:
        from sutazai_runtime.discovery.nats_kv import NatsKvRegistry
        from sutazai_runtime.nats import connect_nats

        nc = await connect_nats(settings.nats_url, name=client_name, connect_timeout_s=settings.connect_timeout_s)
        registry = NatsKvRegistry(nc, bucket=settings.bucket, ttl_s=settings.ttl_s, owns_connection=True)
    await registry.start()
    return registry
