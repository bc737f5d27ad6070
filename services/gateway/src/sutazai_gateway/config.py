from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sutazai_runtime.settings import LogLevel, database_url_field, nats_url_field, redis_url_field

HOST_PORT = r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$"


class Settings(BaseSettings):
    """Gateway configuration, read once at start-up (env prefix ``SUTAZAI_GATEWAY_``)."""

    model_config = SettingsConfigDict(
        env_prefix="SUTAZAI_GATEWAY_", extra="ignore", populate_by_name=True, frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(10010, ge=1, le=65535)
    metrics_port: int = Field(9101, ge=0, le=65535)
    log_level: LogLevel = "INFO"
    access_log: bool = False
    database_url: str = database_url_field()
    redis_url: str = redis_url_field()
    nats_url: str = nats_url_field()

    # Upstream gRPC services (static for now; discovery through the mesh comes later).
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

    # Per-upstream circuit breakers: consecutive failures to open, seconds before a probe.
    breaker_failures: int = Field(5, ge=1, le=1000)
    breaker_recovery_s: float = Field(30.0, gt=0, le=3600)
    upstream_timeout_s: float = Field(10.0, gt=0, le=600)
    probe_timeout_s: float = Field(1.0, gt=0, le=30)
    monitor_interval_s: float = Field(2.0, gt=0, le=300)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # Document uploads (/api/v1/documents): the memory service takes files of up to 10 MiB.
    max_upload_bytes: int = Field(11 * 1_048_576, ge=1024, le=15 * 1_048_576)
    startup_timeout_s: float = Field(60.0, gt=0)
    shutdown_grace_s: float = Field(3.0, gt=0, le=4.0)

    def upstream_addresses(self) -> dict[str, str]:
        return {
            "agents": self.agents_addr,
            "tasks": self.tasks_addr,
            "mesh": self.mesh_addr,
            "chat": self.chat_addr,
            "memory": self.memory_addr,
        }

    @field_validator("jwt_secret")
    @classmethod
    def _not_a_placeholder(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(set(secret)) < 8 or any(word in secret.lower() for word in ("changeme", "secret", "example")):
            raise ValueError("jwt_secret looks like a placeholder; generate one, e.g. `openssl rand -base64 48`")
        return value
