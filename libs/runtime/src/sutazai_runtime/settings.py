"""Settings every service shares. A service's ``config.Settings`` extends ``ServiceSettings``.

Settings are read once, in ``main()``, and passed down; nothing reads the environment elsewhere.
Infrastructure URLs use the conventional unprefixed names (``DATABASE_URL``, ``REDIS_URL``,
``NATS_URL``); everything else is prefixed per service, e.g. ``SUTAZAI_AGENTS_GRPC_PORT``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sutazai_runtime.discovery.settings import DiscoverySettings
from sutazai_runtime.identity.settings import IdentitySettings

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/sutazai"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def database_url_field() -> str:
    return Field(DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL"))


def redis_url_field() -> str:
    return Field(DEFAULT_REDIS_URL, validation_alias=AliasChoices("REDIS_URL"))


def nats_url_field() -> str:
    return Field(DEFAULT_NATS_URL, validation_alias=AliasChoices("NATS_URL"))


class TelemetrySettings(BaseSettings):
    """Traces (``sutazai_runtime.telemetry``), under the standard OpenTelemetry names, shared by every process.

    Tracing is on only when an OTLP endpoint is set; otherwise no span is made anywhere (near-zero cost).
    The SDK itself also honours the other standard variables (``OTEL_EXPORTER_OTLP_HEADERS``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # OTLP over gRPC, e.g. http://collector:4317 (http:// means without TLS). Each process exports as
    # service.name sutazai-<service> (sutazai-gateway, sutazai-tasks-worker, ...).
    otlp_endpoint: str = Field("", validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT"))
    # Head sampling: the standard samplers; a parent's decision is followed by the parentbased_* ones. Unset: 1 %
    # of new traces (``DEFAULT_RATIO``), every trace a caller's sampled traceparent asks for; recording every
    # request costs the one-hop read ~40 % of its throughput (bench/edge_overhead.py), 1 % about 2 %.
    sampler: Literal["always_on", "always_off", "traceidratio", "parentbased_always_on",
                     "parentbased_always_off", "parentbased_traceidratio"] = Field(
        "parentbased_traceidratio", validation_alias=AliasChoices("OTEL_TRACES_SAMPLER"))
    # Unset: DEFAULT_RATIO with the default sampler, 1.0 (the standard's default) with a ratio sampler one names.
    sampler_arg: float | None = Field(None, ge=0.0, le=1.0, validation_alias=AliasChoices("OTEL_TRACES_SAMPLER_ARG"))

    DEFAULT_RATIO: ClassVar[float] = 0.01

    @property
    def ratio(self) -> float:
        """The traceidratio samplers' ratio."""
        if self.sampler_arg is not None:
            return self.sampler_arg
        return 1.0 if "sampler" in self.model_fields_set else self.DEFAULT_RATIO

    @property
    def enabled(self) -> bool:
        return bool(self.otlp_endpoint.strip())


class ServiceSettings(BaseSettings):
    """What every gRPC service needs to run; the subclass sets ``env_prefix`` and the port defaults."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    host: str = "127.0.0.1"
    grpc_port: int = Field(ge=0, le=65535)  # 0: any free port (tests)
    # 0 turns the Prometheus endpoint off (tests that start many servers use it).
    metrics_port: int = Field(ge=0, le=65535)
    log_level: LogLevel = "INFO"
    # SIGTERM to exit must stay under 5 s: grace for in-flight calls plus closing clients.
    shutdown_grace_s: float = Field(3.0, gt=0, le=4.0)
    probe_timeout_s: float = Field(1.0, gt=0, le=30)
    probe_interval_s: float = Field(1.0, gt=0, le=60)
    startup_timeout_s: float = Field(60.0, gt=0)

    # This instance in the registry (see ``sutazai_runtime.discovery``). Empty id: <name>-<host>-<port>.
    instance_id: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,100}$")
    advertise_host: str = ""  # the address others dial; empty: ``host`` (or the host name for 0.0.0.0)
    zone: str = Field("local", max_length=64)
    weight: int = Field(1, ge=1, le=1000)
    tags: list[str] = Field(default_factory=list)
    register_instance: bool = True  # off: serve without announcing (static deployments, some tests)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # The public keys that verify callers' identity proofs (SUTAZAI_IDENTITY_*; required at start).
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
