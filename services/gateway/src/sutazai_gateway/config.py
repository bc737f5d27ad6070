import os

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sutazai_runtime.balancing import make_strategy
from sutazai_runtime.discovery.settings import DiscoverySettings
from sutazai_runtime.identity import IdentitySettings
from sutazai_runtime.settings import (
    LogLevel,
    TelemetrySettings,
    database_url_field,
    nats_url_field,
    redis_url_field,
)

from sutazai_gateway.ratelimit_policy import LIMIT_CLASSES, parse_limit

HOST_PORT = r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}(,[A-Za-z0-9_.\-\[\]:]+:\d{1,5})*$"


class Settings(BaseSettings):
    """Gateway configuration, read once at start-up (env prefix ``SUTAZAI_GATEWAY_``)."""

    model_config = SettingsConfigDict(
        env_prefix="SUTAZAI_GATEWAY_", extra="ignore", populate_by_name=True, frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(10010, ge=1, le=65535)
    # Processes serving the port; 0: one per CPU core. Each keeps its own breakers, health picture and
    # credential cache (see the README). 1 by default: see docs/decisions.md.
    workers: int = Field(1, ge=0, le=64)
    metrics_port: int = Field(9101, ge=0, le=65535)
    log_level: LogLevel = "INFO"
    access_log: bool = False
    database_url: str = database_url_field()
    redis_url: str = redis_url_field()
    nats_url: str = nats_url_field()

    # Upstream gRPC services when discovery is static (SUTAZAI_DISCOVERY_BACKEND=static, e.g. Kubernetes
    # Service DNS); otherwise instances come from the registry.
    agents_addr: str = Field("127.0.0.1:50051", pattern=HOST_PORT)
    tasks_addr: str = Field("127.0.0.1:50052", pattern=HOST_PORT)
    mesh_addr: str = Field("127.0.0.1:50053", pattern=HOST_PORT)
    chat_addr: str = Field("127.0.0.1:50054", pattern=HOST_PORT)
    memory_addr: str = Field("127.0.0.1:50055", pattern=HOST_PORT)

    # Identity. The JWT secret has no default: the gateway refuses to start without a strong one.
    jwt_secret: SecretStr = Field(min_length=32)
    access_token_ttl_s: int = Field(30 * 60, ge=60)
    refresh_token_ttl_s: int = Field(7 * 24 * 3600, ge=300)
    # The first admin, created at start-up when missing (the launcher generates these for `make run`).
    bootstrap_admin_username: str = Field("admin", min_length=3, max_length=64)
    bootstrap_admin_password: SecretStr | None = None
    bootstrap_api_key: SecretStr | None = None
    # API keys' last_used_at is noted in memory and written in one statement this often (and at stop).
    key_usage_flush_s: float = Field(30.0, gt=0, le=3600)
    # The key that signs the identity the gateway passes to services (SUTAZAI_IDENTITY_*: private key required,
    # public keys checked to hold its key when set).
    identity: IdentitySettings = Field(default_factory=IdentitySettings)

    # Per-upstream protection (sutazai_runtime.resilience): the breaker opens on consecutive failures or on
    # a failure rate over a rolling window (above a minimum volume); recovery_s later one probe is let through.
    breaker_failures: int = Field(5, ge=1, le=1000)
    breaker_recovery_s: float = Field(30.0, gt=0, le=3600)
    breaker_failure_rate: float = Field(0.5, gt=0, le=1)
    breaker_minimum_requests: int = Field(20, ge=1)
    breaker_window_s: int = Field(10, ge=1, le=600)
    breaker_half_open_probes: int = Field(1, ge=1, le=100)
    outlier_failures: int = Field(5, ge=1)
    outlier_ejection_s: float = Field(30.0, gt=0)
    upstream_timeout_s: float = Field(10.0, gt=0, le=600)
    # One attempt of an idempotent call (Get*, List*): past it the call is retried on another instance.
    per_try_timeout_s: float = Field(2.0, gt=0, le=600)
    upstream_max_concurrent: int = Field(1000, ge=1)
    # Client-side load balancing: the default strategy and per-upstream overrides, e.g. '{"chat": "round_robin"}'.
    lb_strategy: str = "p2c_peak_ewma"
    lb_strategies: dict[str, str] = Field(default_factory=dict)
    # Where the upstreams are found: the registry (NATS KV, or Consul with CONSUL_HTTP_ADDR), or with
    # SUTAZAI_DISCOVERY_BACKEND=static the *_addr settings above (a comma-separated list each).
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    probe_timeout_s: float = Field(1.0, gt=0, le=30)
    monitor_interval_s: float = Field(2.0, gt=0, le=300)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # Document uploads (/api/v1/documents): the memory service takes files of up to 10 MiB.
    max_upload_bytes: int = Field(11 * 1_048_576, ge=1024, le=15 * 1_048_576)
    # FastAPI's native OpenTelemetry in full (its metrics, logs and per-operation spans besides the request
    # span, which tracing turns on by itself). Off by default: while no provider is configured, FastAPI asks
    # OpenTelemetry for the global providers on every request, which reads os.environ each time.
    otel: bool = False
    # Traces: the standard OTEL_* variables (sutazai_runtime.settings.TelemetrySettings).
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # Rate limits (ratelimit.py), per user (or per API key with an override of its own), in Redis and so shared
    # by every gateway process and instance. The original's defaults; limits' notation ("60/minute", "5/second").
    # Unauthenticated requests are limited per client address; admins are exempt unless rate_limit_admins.
    rate_limit_enabled: bool = True
    rate_limit_default: str = "60/minute"
    rate_limit_chat: str = "30/minute"
    rate_limit_chat_stream: str = "20/minute"
    rate_limit_anonymous: str = "60/minute"
    rate_limit_admins: bool = False
    # Per user or per API key: {"user:<user id>": "600/minute", "key:<key prefix>": {"chat": "100/minute"}};
    # a string applies to every class (default, chat, chat_stream), "unlimited" exempts.
    rate_limit_overrides: dict[str, str | dict[str, str]] = Field(default_factory=dict)
    # Past this the request is let through unlimited (Redis slow or away), and Redis is not asked again for 5 s.
    rate_limit_timeout_s: float = Field(0.25, gt=0, le=10)
    # The API cache (api_cache.py) for cacheable GETs; 0 turns it off.
    api_cache_ttl_s: int = Field(30, ge=0, le=86_400)
    # Namespace of the gateway's keys in Redis (rate limits, API cache, its counters). The launcher gives each
    # stack with its own database its own, so test stacks never count into a development stack's numbers.
    cache_prefix: str = Field("sutazai:gateway:", min_length=1, max_length=100)
    # GET /api/v1/health/detailed checks at most this often (one round in flight at a time); the last picture
    # otherwise.
    health_min_interval_s: float = Field(1.0, ge=0, le=300)
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips: addresses, networks or "*"):
    # behind Envoy or a load balancer, its address here, so limits per address count clients, not the proxy.
    forwarded_allow_ips: str = "127.0.0.1"
    # Browsers from these origins may call the API (CORS). Never "*" with credentials.
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = True
    # Responses of at least this many bytes are gzip-compressed for clients that accept it; 0 turns it off.
    gzip_minimum_bytes: int = Field(1000, ge=0)
    startup_timeout_s: float = Field(60.0, gt=0)
    shutdown_grace_s: float = Field(3.0, gt=0, le=4.0)

    def worker_count(self) -> int:
        """``workers``, or the CPU cores this process may run on."""
        if self.workers:
            return self.workers
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0)) or 1
        return os.cpu_count() or 1

    def upstream_addresses(self) -> dict[str, str]:
        return {
            "agents": self.agents_addr,
            "tasks": self.tasks_addr,
            "mesh": self.mesh_addr,
            "chat": self.chat_addr,
            "memory": self.memory_addr,
        }

    @field_validator("lb_strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        make_strategy(value)
        return value

    @field_validator("lb_strategies")
    @classmethod
    def _known_strategies(cls, value: dict[str, str]) -> dict[str, str]:
        for strategy in value.values():
            make_strategy(strategy)
        return value

    @field_validator("rate_limit_default", "rate_limit_chat", "rate_limit_chat_stream", "rate_limit_anonymous")
    @classmethod
    def _a_limit(cls, value: str) -> str:
        parse_limit(value)
        return value

    @field_validator("rate_limit_overrides")
    @classmethod
    def _overrides(cls, value: dict[str, str | dict[str, str]]) -> dict[str, str | dict[str, str]]:
        for who, limit in value.items():
            if not who.startswith(("user:", "key:")):
                raise ValueError(f"{who!r}: name a 'user:<user id>' or a 'key:<key prefix>'")
            for cls_name, text in (limit.items() if isinstance(limit, dict) else [("default", limit)]):
                if cls_name not in LIMIT_CLASSES:
                    raise ValueError(f"{who!r}: unknown class {cls_name!r}; one of {', '.join(LIMIT_CLASSES)}")
                parse_limit(text)
        return value

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> "Settings":
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError("cors_origins '*' with cors_allow_credentials would let any site act as the user; "
                             "list the origins")
        return self

    @field_validator("jwt_secret")
    @classmethod
    def _not_a_placeholder(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(set(secret)) < 8 or any(word in secret.lower() for word in ("changeme", "secret", "example")):
            raise ValueError("jwt_secret looks like a placeholder; generate one, e.g. `openssl rand -base64 48`")
        return value
