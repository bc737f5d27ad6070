"""Long-term memory over REST: translation to ``sutazai.memory.v1.MemoryService`` only.

The caller's user id scopes every call (the memory service reads it from the gRPC metadata); a memory of
another user answers 404 on every route, as an unknown id does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sutazai.common.v1 import common_pb2
from sutazai.memory.v1 import memory_pb2
from sutazai_runtime.timestamps import iso_of

from sutazai_gateway.api.deps import CurrentUser, StateDep
from sutazai_gateway.api.routes.memory_common import (
    COMMON,
    INFER_TIMEOUT_S,
    MEMORY_TIMEOUT_S,
    JsonObject,
    PassThroughJsonResponse,
    json_bytes,
    json_value,
    memory_dict,
    storable,
    stub,
)
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/memory", tags=["memory"])

MemoryId = Annotated[str, Path(min_length=1, max_length=64)]
ScopeId = Annotated[str | None, Field(None, min_length=1, max_length=128)]


class ScopeFields(BaseModel):
    agent_id: ScopeId = None
    session_id: ScopeId = None
    run_id: ScopeId = None

    def scope(self) -> memory_pb2.Scope:
        return memory_pb2.Scope(agent_id=self.agent_id or "", session_id=self.session_id or "",
                                run_id=self.run_id or "")


class Message(BaseModel):
    role: str = Field(max_length=32)
    content: str = Field(max_length=32_000)


class NewMemory(ScopeFields):
    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(None, min_length=1, max_length=32_000)
    messages: list[Message] | None = Field(None, min_length=1, max_length=200,
                                           description="a conversation (with infer: true), instead of content")
    metadata: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_text(self) -> NewMemory:
        if (self.content is None) == (self.messages is None):
            raise ValueError("give exactly one of content or messages")
        return self

    def text(self) -> str:
        if self.content is not None:
            return self.content
        return "\n".join(f"{m.role}: {m.content}" for m in self.messages or [])


class AddBody(NewMemory):
    """One memory (``content`` or ``messages``), or a batch in ``memories``; the scope fields and
    ``metadata`` given at the top apply to every item of a batch that does not set its own."""

    content: str | None = Field(None, min_length=1, max_length=32_000)
    memories: list[NewMemory] | None = Field(None, min_length=1, max_length=100)
    infer: bool = Field(False, description="ask the model once per item for its facts (JSON) and store those")
    extract_graph: bool = Field(False, description="ask the model once per stored memory for the entities and "
                                "relations it states and upsert them into the graph (in the memory's scope)")

    @model_validator(mode="after")
    def _one_text(self) -> AddBody:
        given = sum(x is not None for x in (self.content, self.messages, self.memories))
        if given != 1:
            raise ValueError("give exactly one of content, messages or memories")
        return self

    def items(self) -> list[memory_pb2.MemoryInput]:
        entries = self.memories or [self]
        out = []
        for entry in entries:
            metadata = {**self.metadata, **entry.metadata} if entry is not self else self.metadata
            out.append(memory_pb2.MemoryInput(
                content=entry.text(), metadata_json=json_bytes(metadata),
                scope=memory_pb2.Scope(agent_id=entry.agent_id or self.agent_id or "",
                                       session_id=entry.session_id or self.session_id or "",
                                       run_id=entry.run_id or self.run_id or "")))
        return out


class SearchBody(ScopeFields):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=32_000)
    limit: int = Field(10, ge=1, le=100)
    threshold: float | None = Field(None, ge=-1, le=1, description="minimum cosine similarity of the semantic "
                                    "signal; keyword matches are kept")
    metadata: Annotated[dict[str, str | int | bool], AfterValidator(storable)] = Field(
        default_factory=dict, description="exact-match filters")
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(None, min_length=1, max_length=32_000)
    metadata: JsonObject | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateBody:
        if self.content is None and self.metadata is None:
            raise ValueError("give content, metadata or both")
        return self


class MemoryOut(BaseModel):
    id: str
    content: str
    metadata: dict[str, Any]
    agent_id: str | None
    session_id: str | None
    run_id: str | None
    user_id: str
    collection: str | None
    document_id: str | None
    hash: str
    created_at: datetime | None
    updated_at: datetime | None


class GraphOut(BaseModel):
    entities: int
    relations: int
    skipped: str | None = Field(description="why nothing was extracted (the model's reply was not valid)")


class AddResultOut(BaseModel):
    event: Literal["created", "duplicate", "skipped"]
    id: str | None
    memory: MemoryOut | None
    reason: str | None
    item: int
    graph: GraphOut | None = Field(None, description="with extract_graph: what went into the graph")


class AddOut(BaseModel):
    results: list[AddResultOut]
    model_calls: int


class SearchHit(MemoryOut):
    score: float


class SearchOut(BaseModel):
    results: list[SearchHit]
    query: str
    mode: str


class ListOut(BaseModel):
    memories: list[MemoryOut]
    total: int
    limit: int
    offset: int


class ChangeOut(BaseModel):
    event: Literal["ADD", "UPDATE", "DELETE"]
    old_content: str | None
    new_content: str | None
    old_metadata: dict[str, Any] | None
    new_metadata: dict[str, Any] | None
    at: datetime | None


class HistoryOut(BaseModel):
    memory_id: str
    changes: list[ChangeOut]


@router.post("", response_model=AddOut, status_code=201, responses=problem_responses(*COMMON, 400, 413))
async def add_memories(body: AddBody, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Store one memory or a batch. The same content twice in one scope is kept once (``event:
    duplicate`` answers the existing memory; nothing is deleted). ``infer: true`` makes one model call per
    item; an item whose model reply is not valid JSON is ``skipped`` with the reason."""
    request = memory_pb2.AddMemoriesRequest(items=body.items(), infer=body.infer, extract_graph=body.extract_graph)
    with upstream_errors("memory"):
        reply = await stub(state).AddMemories(request, metadata=user.to_metadata(),
                                              timeout=INFER_TIMEOUT_S if body.infer or body.extract_graph
                                              else MEMORY_TIMEOUT_S)
    return {"model_calls": reply.model_calls, "results": [
        {"event": r.event, "item": r.item, "reason": r.reason or None,
         "id": r.memory.id if r.HasField("memory") else None,
         "memory": memory_dict(r.memory) if r.HasField("memory") else None,
         "graph": {"entities": r.graph.entities, "relations": r.graph.relations, "skipped": r.graph.skipped or None}
         if r.HasField("graph") else None} for r in reply.results]}


@router.post("/search", response_model=SearchOut, responses=problem_responses(*COMMON, 400))
async def search_memories(body: SearchBody, state: StateDep, user: CurrentUser) -> Response:
    """Hybrid search (semantic + keyword, fused by rank) over the caller's memories, narrowed by the given
    scope fields and metadata. ``score`` is the fused score in hybrid mode, the cosine similarity in dense
    mode, BM25 in keyword mode."""
    request = memory_pb2.SearchMemoriesRequest(query=body.query, limit=body.limit, scope=body.scope(),
                                               metadata_json=json_bytes(body.metadata), mode=body.mode)
    if body.threshold is not None:
        request.threshold = body.threshold
    with upstream_errors("memory"):
        reply = await stub(state).SearchMemories(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    # the hot read: already SearchOut's shape, serialised once (no second validation), metadata unparsed
    return PassThroughJsonResponse({"query": body.query, "mode": body.mode, "results": [
        {**memory_dict(r.memory, raw=True), "score": r.score} for r in reply.results]})


@router.get("", response_model=ListOut, responses=problem_responses(*COMMON, 400))
async def list_memories(
    state: StateDep, user: CurrentUser,
    agent_id: Annotated[str, Query(max_length=128)] = "", session_id: Annotated[str, Query(max_length=128)] = "",
    run_id: Annotated[str, Query(max_length=128)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """The caller's memories, newest first."""
    request = memory_pb2.ListMemoriesRequest(
        scope=memory_pb2.Scope(agent_id=agent_id, session_id=session_id, run_id=run_id),
        page=common_pb2.PageRequest(limit=limit, offset=offset))
    with upstream_errors("memory"):
        reply = await stub(state).ListMemories(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return {"memories": [memory_dict(m) for m in reply.memories], "total": reply.page.total,
            "limit": reply.page.limit, "offset": reply.page.offset}


@router.get("/{memory_id}", response_model=MemoryOut, responses=problem_responses(*COMMON, 404))
async def get_memory(memory_id: MemoryId, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    with upstream_errors("memory"):
        reply = await stub(state).GetMemory(memory_pb2.GetMemoryRequest(id=memory_id), metadata=user.to_metadata(),
                                            timeout=MEMORY_TIMEOUT_S)
    return memory_dict(reply)


@router.put("/{memory_id}", response_model=MemoryOut, responses=problem_responses(*COMMON, 400, 404, 409))
async def update_memory(memory_id: MemoryId, body: UpdateBody, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Change the content (re-embedded), the metadata (replaced), or both; recorded in the history. 409 when
    another memory in the same scope already has the new content."""
    request = memory_pb2.UpdateMemoryRequest(id=memory_id)
    if body.content is not None:
        request.content = body.content
    if body.metadata is not None:
        request.metadata_json = json_bytes(body.metadata)
    with upstream_errors("memory"):
        reply = await stub(state).UpdateMemory(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return memory_dict(reply)


@router.delete("/{memory_id}", status_code=204, responses=problem_responses(*COMMON, 404))
async def delete_memory(memory_id: MemoryId, state: StateDep, user: CurrentUser) -> Response:
    """Removes the memory and its vectors; its history stays readable."""
    with upstream_errors("memory"):
        await stub(state).DeleteMemory(memory_pb2.DeleteMemoryRequest(id=memory_id), metadata=user.to_metadata(),
                                       timeout=MEMORY_TIMEOUT_S)
    return Response(status_code=204)


@router.get("/{memory_id}/history", response_model=HistoryOut, responses=problem_responses(*COMMON, 404))
async def memory_history(memory_id: MemoryId, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Every change of the memory (ADD, UPDATE, DELETE) with its time, oldest first."""
    with upstream_errors("memory"):
        reply = await stub(state).MemoryHistory(memory_pb2.MemoryHistoryRequest(id=memory_id),
                                                metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return {"memory_id": memory_id, "changes": [
        {"event": c.event, "old_content": c.old_content if c.event != "ADD" else None,
         "new_content": c.new_content if c.event != "DELETE" else None,
         "old_metadata": json_value(c.old_metadata_json), "new_metadata": json_value(c.new_metadata_json),
         "at": iso_of(c, "at")} for c in reply.changes]}
