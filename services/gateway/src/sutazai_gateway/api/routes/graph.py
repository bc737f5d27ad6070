"""The knowledge graph over REST: translation to the memory service's graph RPCs only. Entities and
relations are the caller's; another user's ids answer 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sutazai.common.v1 import common_pb2
from sutazai.memory.v1 import memory_pb2
from sutazai_runtime.timestamps import iso_of, to_timestamp

from sutazai_gateway.api.deps import CurrentUser, StateDep
from sutazai_gateway.api.routes.memory_common import (
    COMMON,
    MEMORY_TIMEOUT_S,
    JsonObject,
    json_bytes,
    json_value,
    scope_fields,
    stub,
)
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/graph", tags=["graph"])

GraphId = Annotated[str, Path(min_length=1, max_length=64)]
ScopeId = Annotated[str | None, Field(None, min_length=1, max_length=128)]


class EntityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=64)
    properties: JsonObject = Field(default_factory=dict, description="merged into the stored properties")
    agent_id: ScopeId = None
    session_id: ScopeId = None
    run_id: ScopeId = None


class RelationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=64, description="entity id")
    target: str = Field(min_length=1, max_length=64, description="entity id")
    type: str = Field(min_length=1, max_length=64)
    properties: JsonObject = Field(default_factory=dict)
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class EntityOut(BaseModel):
    id: str
    name: str
    type: str
    properties: dict[str, Any]
    agent_id: str | None
    session_id: str | None
    run_id: str | None
    created_at: datetime | None
    updated_at: datetime | None


class UpsertOut(EntityOut):
    created: bool


class RelationOut(BaseModel):
    id: str
    source: str
    target: str
    type: str
    properties: dict[str, Any]
    valid_from: datetime | None
    valid_to: datetime | None
    created_at: datetime | None


class SubgraphOut(BaseModel):
    entity: EntityOut
    depth: int
    neighbours: list[EntityOut]
    relations: list[RelationOut]


class PathOut(BaseModel):
    found: bool
    length: int | None
    entities: list[EntityOut]
    relations: list[RelationOut]


class EntityList(BaseModel):
    entities: list[EntityOut]
    total: int
    limit: int
    offset: int


class DeletedOut(BaseModel):
    deleted: bool
    relations_removed: int


def entity_dict(e: memory_pb2.Entity) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "type": e.type, "properties": json_value(e.properties_json, {}),
            **scope_fields(e.scope), "created_at": iso_of(e, "created_at"), "updated_at": iso_of(e, "updated_at")}


def relation_dict(r: memory_pb2.Relation) -> dict[str, Any]:
    return {"id": r.id, "source": r.source_id, "target": r.target_id, "type": r.type,
            "properties": json_value(r.properties_json, {}), "valid_from": iso_of(r, "valid_from"),
            "valid_to": iso_of(r, "valid_to"), "created_at": iso_of(r, "created_at")}


@router.post("/entities", response_model=UpsertOut,
             responses={**problem_responses(*COMMON, 400),
                        201: {"model": UpsertOut, "description": "a new entity (200: an existing one, updated)"}})
async def upsert_entity(body: EntityBody, state: StateDep, user: CurrentUser, response: Response) -> dict[str, Any]:
    """Upsert by name and type (within the scope): 201 with the new id, or 200 with the existing entity
    and its properties merged with the given ones."""
    request = memory_pb2.UpsertEntityRequest(
        name=body.name, type=body.type, properties_json=json_bytes(body.properties),
        scope=memory_pb2.Scope(agent_id=body.agent_id or "", session_id=body.session_id or "",
                               run_id=body.run_id or ""))
    with upstream_errors("memory"):
        reply = await stub(state).UpsertEntity(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    response.status_code = 201 if reply.created else 200
    return {**entity_dict(reply.entity), "created": reply.created}


@router.get("/entities", response_model=EntityList, responses=problem_responses(*COMMON, 400))
async def list_entities(
    state: StateDep, user: CurrentUser, type: Annotated[str, Query(max_length=64)] = "",
    name: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    request = memory_pb2.ListEntitiesRequest(type=type, name=name,
                                             page=common_pb2.PageRequest(limit=limit, offset=offset))
    with upstream_errors("memory"):
        reply = await stub(state).ListEntities(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return {"entities": [entity_dict(e) for e in reply.entities], "total": reply.page.total,
            "limit": reply.page.limit, "offset": reply.page.offset}


@router.get("/entities/{entity_id}", response_model=SubgraphOut, responses=problem_responses(*COMMON, 400, 404))
async def get_entity(entity_id: GraphId, state: StateDep, user: CurrentUser,
                     depth: Annotated[int, Query(ge=0, le=5)] = 1) -> dict[str, Any]:
    """The entity with its neighbours (either direction) up to ``depth`` hops and the relations among them."""
    with upstream_errors("memory"):
        reply = await stub(state).GetEntity(memory_pb2.GetEntityRequest(id=entity_id, depth=depth),
                                            metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return {"entity": entity_dict(reply.entity), "depth": depth,
            "neighbours": [entity_dict(e) for e in reply.neighbours],
            "relations": [relation_dict(r) for r in reply.relations]}


@router.delete("/entities/{entity_id}", response_model=DeletedOut, responses=problem_responses(*COMMON, 404))
async def delete_entity(entity_id: GraphId, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Removes the entity and every relation that touches it (nothing dangles)."""
    with upstream_errors("memory"):
        reply = await stub(state).DeleteEntity(memory_pb2.DeleteEntityRequest(id=entity_id),
                                               metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return {"deleted": reply.deleted, "relations_removed": reply.relations_removed}


@router.post("/relations", response_model=RelationOut, status_code=201,
             responses=problem_responses(*COMMON, 400, 404))
async def create_relation(body: RelationBody, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """A relation between two of the caller's entities (404 when either is unknown), valid from
    ``valid_from`` (unset: always) until ``valid_to`` (unset: still)."""
    request = memory_pb2.CreateRelationRequest(
        source_id=body.source, target_id=body.target, type=body.type, properties_json=json_bytes(body.properties),
        valid_from=to_timestamp(body.valid_from), valid_to=to_timestamp(body.valid_to))
    with upstream_errors("memory"):
        reply = await stub(state).CreateRelation(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return relation_dict(reply)


@router.delete("/relations/{relation_id}", status_code=204, responses=problem_responses(*COMMON, 404))
async def delete_relation(relation_id: GraphId, state: StateDep, user: CurrentUser) -> Response:
    with upstream_errors("memory"):
        await stub(state).DeleteRelation(memory_pb2.DeleteRelationRequest(id=relation_id),
                                         metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return Response(status_code=204)


@router.get("/path", response_model=PathOut, responses=problem_responses(*COMMON, 400, 404))
async def shortest_path(
    state: StateDep, user: CurrentUser,
    source: Annotated[str, Query(alias="from", min_length=1, max_length=64)],
    target: Annotated[str, Query(alias="to", min_length=1, max_length=64)],
    max_depth: Annotated[int, Query(ge=1, le=10)] = 6,
) -> dict[str, Any]:
    """The shortest path between two entities (relations in either direction): ``found: false`` when none
    within ``max_depth`` hops; 404 when either entity is unknown."""
    request = memory_pb2.ShortestPathRequest(from_id=source, to_id=target, max_depth=max_depth)
    with upstream_errors("memory"):
        reply = await stub(state).ShortestPath(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    return {"found": reply.found, "length": len(reply.relations) if reply.found else None,
            "entities": [entity_dict(e) for e in reply.entities],
            "relations": [relation_dict(r) for r in reply.relations]}
