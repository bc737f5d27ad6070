from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, database_url_field

HOST_PORT = r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$"


def default_agents_dir() -> Path:
    """The repository's ``agents/`` folder when running from a checkout (the workspace root is the first
    parent holding both ``agents/`` and ``pyproject.toml``), else ``./agents``."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "agents").is_dir() and (parent / "pyproject.toml").is_file() and (parent / "services").is_dir():
            return parent / "agents"
    return Path.cwd() / "agents"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_AGENTS_")

    grpc_port: int = Field(50051, ge=0, le=65535)
    metrics_port: int = Field(9102, ge=0, le=65535)
    database_url: str = database_url_field()
    # SUTAZAI_AGENTS_DIR: the folder of Markdown definitions, watched for changes.
    dir: Path = Field(default_factory=default_agents_dir)
    # The chat service, asked which models are served (an agent's status).
    chat_addr: str = Field("127.0.0.1:50054", pattern=HOST_PORT)
    models_timeout_s: float = Field(0.5, gt=0, le=10)
    models_cache_s: float = Field(10.0, ge=0, le=600)
