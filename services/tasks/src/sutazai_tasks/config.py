from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, database_url_field, nats_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_TASKS_")

    grpc_port: int = Field(50052, ge=1, le=65535)
    metrics_port: int = Field(9103, ge=0, le=65535)
    database_url: str = database_url_field()
    nats_url: str = nats_url_field()
    # Prefixes every stream and subject; for deployments sharing a NATS server but not a database.
    namespace: str = Field("", pattern=r"^([A-Za-z0-9_-]{1,32})?$")
    # Re-dispatch queued tasks older than sweep_after_s, every sweep_interval_s.
    sweep_interval_s: float = Field(15.0, gt=0)
    sweep_after_s: float = Field(30.0, gt=0)
    # Workers (python -m sutazai_tasks worker)
    worker_batch: int = Field(100, ge=1, le=1000)
    worker_max_in_flight: int = Field(500, ge=1, le=20_000)
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    retry_base_s: float = Field(1.0, gt=0, le=60)
    agents_addr: str = "127.0.0.1:50051"
    chat_addr: str = "127.0.0.1:50054"
    chat_timeout_s: float = Field(3600.0, gt=0)  # the default deadline of a worker's chat call
