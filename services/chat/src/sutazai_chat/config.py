from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, redis_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_CHAT_")

    grpc_port: int = Field(50054, ge=1, le=65535)
    metrics_port: int = Field(9105, ge=0, le=65535)
    redis_url: str = redis_url_field()
    # The model server; the local default is the llama.cpp server that `make run` starts.
    model_url: str = Field(
        "http://127.0.0.1:11435", validation_alias=AliasChoices("SUTAZAI_MODEL_URL")
    )
    model_kind: Literal["openai", "ollama"] = Field(
        "openai", validation_alias=AliasChoices("SUTAZAI_MODEL_KIND")
    )
