from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.settings import ServiceSettings, database_url_field


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_MEMORY_")

    grpc_port: int = Field(50055, ge=0, le=65535)
    metrics_port: int = Field(9106, ge=0, le=65535)
    database_url: str = database_url_field()
    # Every model call (embeddings, fact inference) goes through the chat service.
    chat_addr: str = "127.0.0.1:50054"
    # Embedding model asked of chat ("" = chat's default embedding model); the collection is named after the
    # model and dimension chat reports, so changing models never mixes vectors of two models.
    embed_model: str = ""
    infer_model: str = ""                    # model for `infer: true` ("" = chat's default)
    embed_batch: int = Field(64, ge=1, le=256)
    embed_timeout_s: float = Field(60.0, gt=0)
    infer_timeout_s: float = Field(120.0, gt=0)

    # Qdrant: a server when QDRANT_URL is set, else Qdrant Edge (the engine in process) in data_dir/vectors. Edge
    # locks its folder: one memory process per folder; run a Qdrant server to scale out.
    qdrant_url: str | None = Field(None, validation_alias=AliasChoices("QDRANT_URL", "SUTAZAI_MEMORY_QDRANT_URL"))
    qdrant_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("QDRANT_API_KEY"))
    qdrant_timeout_s: float = Field(10.0, gt=0)
    data_dir: Path = Path(".sutazai/memory")
    # Edge engine: HNSW is built in a child process once this many points were written since the last build
    # and writes paused for 2 s (at most 60 s after); 0 turns it off (searches stay exact). See edge_index.py.
    index_after: int = Field(2000, ge=0)
    # Edge engine: threads of a collection's search pool (per-segment reads in parallel); 0 = Qdrant's default,
    # one per CPU. Searches run one at a time on the service's event loop, so more threads only split one
    # search over its few segments, and on a small machine they cost more than they win: measured on 2 cores,
    # a hybrid search took 1.24 ms and 1.45 ms of CPU with the default pool, 0.95 ms and 1.0 ms with one thread
    # (the idle pool threads spin in sched_yield after each search, beside the rest of the request).
    search_threads: int = Field(1, ge=0)

    # Knowledge graph: Neo4j when NEO4J_URI is set, else tables in the Postgres schema `memory`.
    neo4j_uri: str | None = Field(None, validation_alias=AliasChoices("NEO4J_URI"))
    neo4j_user: str = Field("neo4j", validation_alias=AliasChoices("NEO4J_USER", "NEO4J_USERNAME"))
    neo4j_password: SecretStr = Field(SecretStr("neo4j"), validation_alias=AliasChoices("NEO4J_PASSWORD"))
    neo4j_database: str | None = Field(None, validation_alias=AliasChoices("NEO4J_DATABASE"))

    # Documents
    max_document_bytes: int = Field(10 * 1024 * 1024, ge=1, le=15 * 1024 * 1024)  # under the gRPC limit
    chunk_tokens: int = Field(180, ge=16, le=2000)     # words and punctuation marks, below the model's 256
    chunk_overlap: int = Field(30, ge=0, le=500)
    ingest_concurrency: int = Field(1, ge=1, le=8)

    @property
    def vectors_dir(self) -> Path:
        """The in-process engine's shards (one folder per collection) when no Qdrant server is configured."""
        return self.data_dir / "vectors"
