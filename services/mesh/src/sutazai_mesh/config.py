from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, nats_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_MESH_")

    grpc_port: int = Field(50053, ge=1, le=65535)
    metrics_port: int = Field(9104, ge=0, le=65535)
    nats_url: str = nats_url_field()
    registry_bucket: str = Field("sutazai_registry", pattern=r"^[A-Za-z0-9_-]+$")
    registry_ttl_s: float = Field(30.0, gt=0)
