"""Builds the service's parts from settings; ``__main__`` serves them and tests reuse them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files

import asyncpg
import grpc
from sutazai_runtime.discovery.registry import Registry
from sutazai_runtime.logging import redact_url
from sutazai_runtime.nats import connect_nats
from sutazai_runtime.postgres import apply_migrations, load_migrations
from sutazai_runtime.probes import Probe
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy

from sutazai_memory.chat import ChatClient
from sutazai_memory.config import Settings
from sutazai_memory.document_events import DocumentEvents
from sutazai_memory.documents import Documents
from sutazai_memory.graph.base import GraphStore
from sutazai_memory.graph.postgres import PostgresGraph
from sutazai_memory.memories import Memories
from sutazai_memory.memory_store import MemoryStore
from sutazai_memory.server import MemoryServicer
from sutazai_memory.vectors import VectorIndex, open_index

log = logging.getLogger(__name__)


@dataclass
class Built:
    servicer: MemoryServicer
    index: VectorIndex
    graph: GraphStore
    chat: grpc.aio.Channel | Upstream
    probes: list[Probe] = field(default_factory=list)

    @property
    def cleanups(self) -> list[Callable[[], Awaitable[None]]]:
        return [self.servicer.documents.stop, self.index.close, self.graph.close, self.chat.close]


async def migrate(pool: asyncpg.Pool, schema: str = "memory") -> None:
    await apply_migrations(pool, schema, load_migrations(files("sutazai_memory") / "migrations"))


async def open_events(settings: Settings) -> DocumentEvents:
    """Document ingestion events on NATS (``document_events``); without NATS, none (ingestion goes on)."""
    try:
        nc = await connect_nats(settings.discovery.nats_url, name="sutazai-memory",
                                connect_timeout_s=settings.discovery.connect_timeout_s)
    except Exception as exc:
        log.warning("no NATS: document ingestion events are off", extra={"error": str(exc)})
        return DocumentEvents(None)
    return DocumentEvents(nc)


async def open_graph(settings: Settings, pool: asyncpg.Pool, schema: str) -> GraphStore:
    if settings.neo4j_uri:
        from sutazai_memory.graph.neo4j_store import Neo4jGraph

        graph = Neo4jGraph(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password.get_secret_value(),
                           settings.neo4j_database)
        await graph.setup()
        return graph
    return PostgresGraph(pool, schema)


async def build(settings: Settings, pool: asyncpg.Pool, *, schema: str = "memory",
                chat: grpc.aio.Channel | Upstream | None = None, registry: Registry | None = None,
                events: DocumentEvents | None = None, resume: bool = True) -> Built:
    """``chat``: given (tests), else a balanced ``Upstream`` over ``registry``'s chat instances (the service),
    else the same over the addresses in ``chat_addr``."""
    if chat is None:
        # embeddings on one long-lived stream per chat instance: a search's query embedding is on its hot path
        policy = UpstreamPolicy(timeout_s=settings.embed_timeout_s, multiplexed=frozenset({"Embed"}))
        chat = (Upstream("chat", registry=registry, policy=policy) if registry is not None
                else Upstream("chat", targets=[t.strip() for t in settings.chat_addr.split(",") if t.strip()],
                              policy=policy))
    client = ChatClient(chat, embed_model=settings.embed_model, infer_model=settings.infer_model,
                      batch=settings.embed_batch, embed_timeout_s=settings.embed_timeout_s,
                      infer_timeout_s=settings.infer_timeout_s)
    index = open_index(settings.qdrant_url, settings.vectors_dir,
                             api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
                             timeout_s=settings.qdrant_timeout_s, index_after=settings.index_after,
                             search_threads=settings.search_threads)
    graph = await open_graph(settings, pool, schema)
    if not await index.collections() and await pool.fetchval(f"SELECT EXISTS (SELECT 1 FROM {schema}.memories)"):
        # e.g. the vector folder was lost, or it was qdrant-client's local mode before (.sutazai/memory/qdrant)
        log.warning("the vector index is empty but PostgreSQL holds memories: searches find nothing until "
                    "`python -m sutazai_memory reindex` has run (with the service stopped)")
    memories = Memories(MemoryStore(pool, schema), index, client, graph)
    documents = Documents(pool, index, client, settings.max_document_bytes, settings.chunk_tokens,
                          settings.chunk_overlap, settings.embed_batch, settings.ingest_concurrency, schema,
                          events or DocumentEvents(None))
    resumed = await documents.resume() if resume else 0
    if resumed:
        log.info("resumed document ingestion", extra={"documents": resumed})
    probes = [Probe("qdrant", redact_url(settings.qdrant_url) if settings.qdrant_url
                    else f"qdrant-edge:{settings.vectors_dir}", index.ping)]
    if graph.name == "neo4j":
        probes.append(Probe("neo4j", redact_url(settings.neo4j_uri or ""), graph.ping))
    return Built(MemoryServicer(memories, documents, graph), index, graph, chat, probes)
