from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, database_url_field, nats_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_TASKS_")

    grpc_port: int = Field(50052, ge=1, le=65535)
    metrics_port: int = Field(9103, ge=0, le=65535)
    database_url: str = database_url_field()
    nats_url: str = nats_url_field()
    max_deliveries: int = Field(5, ge=1, le=100)
