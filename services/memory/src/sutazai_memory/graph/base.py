"""Records and the interface both graph backends implement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sutazai_memory.errors import InvalidInput, NotFound, refuse_nul
from sutazai_memory.model import Scope

MAX_DEPTH = 5
MAX_PATH = 10
MAX_NAME = 200


@dataclass(slots=True)
class Entity:
    id: str
    name: str
    type: str
    properties: dict[str, Any]
    scope: Scope = field(default_factory=Scope)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class Relation:
    id: str
    source_id: str
    target_id: str
    type: str
    properties: dict[str, Any]
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class Subgraph:
    entity: Entity
    neighbours: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


@dataclass(slots=True)
class Path:
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.entities)


class GraphStore(Protocol):
    name: str

    async def upsert_entity(self, user_id: str, name: str, type_: str, properties: dict[str, Any],
                            scope: Scope) -> tuple[Entity, bool]: ...

    async def create_relation(self, user_id: str, source_id: str, target_id: str, type_: str,
                              properties: dict[str, Any], valid_from: datetime | None,
                              valid_to: datetime | None) -> Relation: ...

    async def neighbourhood(self, user_id: str, entity_id: str, depth: int) -> Subgraph: ...

    async def shortest_path(self, user_id: str, from_id: str, to_id: str, max_depth: int) -> Path: ...

    async def list_entities(self, user_id: str, type_: str, name: str, limit: int,
                            offset: int) -> tuple[list[Entity], int]: ...

    async def delete_entity(self, user_id: str, entity_id: str) -> int: ...

    async def delete_relation(self, user_id: str, relation_id: str) -> None: ...

    async def counts(self, user_id: str) -> tuple[int, int]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def check_entity(name: str, type_: str) -> tuple[str, str]:
    refuse_nul("name and type", name, type_)
    name, type_ = name.strip(), type_.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"name: 1 to {MAX_NAME} characters")
    if not type_ or len(type_) > 64:
        raise InvalidInput("type: 1 to 64 characters")
    return name, type_


def check_relation(type_: str, valid_from: datetime | None, valid_to: datetime | None) -> str:
    refuse_nul("type", type_)
    type_ = type_.strip()
    if not type_ or len(type_) > 64:
        raise InvalidInput("type: 1 to 64 characters")
    if valid_from and valid_to and valid_to < valid_from:
        raise InvalidInput("valid_to: before valid_from")
    return type_


def check_depth(depth: int, limit: int) -> int:
    if not 0 <= depth <= limit:
        raise InvalidInput(f"depth: between 0 and {limit}")
    return depth


def entity_uuid(value: str, what: str = "entity") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"{what} {value} not found") from None
