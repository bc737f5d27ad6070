"""The original's ``/api/v1/vectors`` routes, with their shapes, on the memory store: a stored vector is a
memory of the caller in the named collection (``collection`` on ``/api/v1/memory`` items)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sutazai.memory.v1 import memory_pb2

from sutazai_gateway.api.deps import CurrentUser, StateDep
from sutazai_gateway.api.routes.memory_common import COMMON, MEMORY_TIMEOUT_S, JsonObject, json_bytes, json_value, stub
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/vectors", tags=["vectors"])

DEFAULT_COLLECTION = "sutazai_docs"


class StoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=32_000)
    metadata: JsonObject = Field(default_factory=dict)
    collection: str = Field(DEFAULT_COLLECTION, min_length=1, max_length=128)
    document_id: str | None = Field(None, max_length=128)


class StoreOut(BaseModel):
    id: str
    backend: str
    status: str
    duplicate: bool


class VectorSearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=32_000)
    collection: str = Field(DEFAULT_COLLECTION, min_length=1, max_length=128)
    limit: int = Field(10, ge=1, le=100)
    threshold: float = Field(0.7, ge=-1, le=1, description="minimum cosine similarity of semantic matches; "
                             "keyword matches are kept")


class VectorHit(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    score: float
    document_id: str | None


class CollectionOut(BaseModel):
    name: str
    count: int
    dimensions: int
    vector_collection: str


class CollectionsOut(BaseModel):
    collections: list[CollectionOut]
    total: int


class StatsOut(BaseModel):
    backend: str
    graph_backend: str
    total_vectors: int
    memories: int
    documents: int
    chunks: int
    collections: int
    graph_entities: int
    graph_relations: int
    embedding_model: str
    dimensions: int


@router.post("/store", response_model=StoreOut, responses=problem_responses(*COMMON, 400))
async def store_vector(body: StoreBody, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """``{id, backend, status: "stored"}`` as the original; ``duplicate`` tells that this text was already in
    the collection (the existing id is answered, nothing is replaced)."""
    item = memory_pb2.MemoryInput(content=body.text, metadata_json=json_bytes(body.metadata),
                                  collection=body.collection, document_id=body.document_id or "")
    with upstream_errors("memory"):
        reply = await stub(state).AddMemories(memory_pb2.AddMemoriesRequest(items=[item]),
                                              metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    result = reply.results[0]
    return {"id": result.memory.id, "backend": reply.backend, "status": "stored",
            "duplicate": result.event == "duplicate"}


@router.post("/search", response_model=list[VectorHit], responses=problem_responses(*COMMON, 400))
async def search_vectors(body: VectorSearchBody, state: StateDep, user: CurrentUser) -> list[dict[str, Any]]:
    """A JSON list ``[{id, text, metadata, score}]`` as the original; hybrid search within the collection."""
    request = memory_pb2.SearchMemoriesRequest(query=body.query, collection=body.collection, limit=body.limit,
                                               threshold=body.threshold)
    with upstream_errors("memory"):
        reply = await stub(state).SearchMemories(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return [{"id": r.memory.id, "text": r.memory.content, "metadata": json_value(r.memory.metadata_json, {}),
             "score": r.score, "document_id": r.memory.document_id or None} for r in reply.results]


@router.get("/collections", response_model=CollectionsOut, responses=problem_responses(*COMMON))
async def list_collections(state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """The caller's collections; plain memories (``/api/v1/memory``) are the collection named ``""``."""
    with upstream_errors("memory"):
        reply = await stub(state).ListCollections(memory_pb2.ListCollectionsRequest(), metadata=user.to_metadata(),
                                                  timeout=MEMORY_TIMEOUT_S)
    collections = [{"name": c.name, "count": c.count, "dimensions": c.dimensions, "vector_collection": c.model}
                   for c in reply.collections]
    return {"collections": collections, "total": len(collections)}


@router.get("/stats", response_model=StatsOut, responses=problem_responses(*COMMON))
async def vector_stats(state: StateDep, user: CurrentUser) -> dict[str, Any]:
    with upstream_errors("memory"):
        s = await stub(state).GetStats(memory_pb2.GetStatsRequest(), metadata=user.to_metadata(),
                                       timeout=MEMORY_TIMEOUT_S)
    return {"backend": s.vector_backend, "graph_backend": s.graph_backend, "total_vectors": s.memories + s.chunks,
            "memories": s.memories, "documents": s.documents, "chunks": s.chunks, "collections": s.collections,
            "graph_entities": s.graph_entities, "graph_relations": s.graph_relations,
            "embedding_model": s.embedding_model, "dimensions": s.dimensions}
