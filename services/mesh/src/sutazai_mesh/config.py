from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, nats_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_MESH_")

    grpc_port: int = Field(50053, ge=1, le=65535)
    metrics_port: int = Field(9104, ge=0, le=65535)
    nats_url: str = nats_url_field()
    # The registry itself is configured by the shared SUTAZAI_DISCOVERY_* settings (``discovery``).
    tasks_addr: str = "127.0.0.1:50052"  # static discovery only: where enqueue creates its durable tasks
    external_check_interval_s: float = Field(10.0, gt=0)
    external_check_timeout_s: float = Field(2.0, gt=0)
