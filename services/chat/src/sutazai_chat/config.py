from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, redis_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_CHAT_")

    grpc_port: int = Field(50054, ge=0, le=65535)
    metrics_port: int = Field(9105, ge=0, le=65535)
    redis_url: str = redis_url_field()

    # Backends: a YAML/JSON file (``backends.example.yaml``), else SUTAZAI_CHAT_BACKENDS (the same list as
    # JSON), else one backend "local" at SUTAZAI_MODEL_URL plus "local-embeddings" at SUTAZAI_EMBEDDINGS_URL.
    backends_file: Path | None = None
    backends: str | None = None
    model_url: str = Field("http://127.0.0.1:11435", validation_alias=AliasChoices("SUTAZAI_MODEL_URL"))
    model_kind: Literal["openai", "ollama"] = Field("openai", validation_alias=AliasChoices("SUTAZAI_MODEL_KIND"))
    embeddings_url: str | None = Field(None, validation_alias=AliasChoices("SUTAZAI_EMBEDDINGS_URL"))
    embeddings_kind: Literal["openai", "ollama"] = Field(
        "openai", validation_alias=AliasChoices("SUTAZAI_EMBEDDINGS_KIND")
    )

    # Names clients may use for served models; the original's default model was "tinyllama".
    # The agents service, for chats that name an agent_id (its system prompt and defaults). Unset: refused.
    agents_addr: str | None = None

    aliases: dict[str, str] = {
        "tinyllama": "SmolLM2-135M-Instruct",
        "nomic-embed-text": "all-MiniLM-L6-v2",
    }
    default_model: str = "tinyllama"
    default_embed_model: str = "nomic-embed-text"
    discovery_interval_s: float = Field(30.0, gt=0)

    # Resilience, per backend (the original's ollama breaker: 5 failures, 60 s).
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(60.0, gt=0)
    breaker_failure_rate: float = Field(0.5, gt=0, le=1)  # over a 10 s window, with at least minimum_requests
    breaker_minimum_requests: int = Field(20, ge=1)
    queue_size: int = Field(16, ge=0)  # callers that may wait for a slot, per backend
    queue_timeout_s: float = Field(30.0, gt=0)
    # Background calls (task workers, metadata sutazai-priority: background) may hold all of a backend's slots
    # but this share (rounded up, at least one of two or more), which stays for people; they wait at most
    # background_wait_s for a slot, then get RESOURCE_EXHAUSTED and the worker puts the task back.
    interactive_share: float = Field(0.25, ge=0, lt=1)
    background_wait_s: float = Field(2.0, gt=0)
    background_queue_size: int = Field(64, ge=0)
    connect_timeout_s: float = Field(3.0, gt=0)
    request_timeout_s: float = Field(120.0, gt=0)

    # Input limits: nothing larger reaches a model server.
    max_prompt_chars: int = Field(32_000, ge=1)
    max_messages: int = Field(200, ge=1)
    # A reply without max_tokens stops here (a small model can otherwise run to its context limit for minutes).
    default_max_tokens: int = Field(512, ge=1)
    max_batch_items: int = Field(50, ge=1)
    batch_concurrency: int = Field(4, ge=1)
    max_embed_inputs: int = Field(256, ge=1)

    cache_ttl_s: int = Field(3600, ge=1)
    cache_prefix: str = "sutazai:chat:"
