"""The graph in the service's PostgreSQL schema: ``graph_entities`` and ``graph_relations``; the
neighbourhood and the shortest path are recursive queries (breadth first, both directions, cycles cut)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from sutazai_memory.errors import NotFound
from sutazai_memory.graph.base import Entity, Path, Relation, Subgraph, entity_uuid
from sutazai_memory.model import Scope

_E = "id, name, type, properties, agent_id, session_id, run_id, created_at, updated_at"
_R = "id, source_id, target_id, type, properties, valid_from, valid_to, created_at"


def _entity(row: asyncpg.Record) -> Entity:
    return Entity(str(row["id"]), row["name"], row["type"], row["properties"] or {},
                  Scope(row["agent_id"], row["session_id"], row["run_id"]), row["created_at"], row["updated_at"])


def _relation(row: asyncpg.Record) -> Relation:
    return Relation(str(row["id"]), str(row["source_id"]), str(row["target_id"]), row["type"],
                    row["properties"] or {}, row["valid_from"], row["valid_to"], row["created_at"])


class PostgresGraph:
    name = "postgres"

    def __init__(self, pool: asyncpg.Pool, schema: str = "memory") -> None:
        self._pool = pool
        self._s = schema

    async def upsert_entity(self, user_id: str, name: str, type_: str, properties: dict[str, Any],
                            scope: Scope) -> tuple[Entity, bool]:
        row = await self._pool.fetchrow(
            f"INSERT INTO {self._s}.graph_entities (id, user_id, agent_id, session_id, run_id, name, type, properties)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
            " ON CONFLICT (user_id, agent_id, session_id, run_id, name, type) DO UPDATE"
            " SET properties = graph_entities.properties || EXCLUDED.properties, updated_at = now()"
            f" RETURNING {_E}, (xmax = 0) AS created",
            uuid.uuid4(), user_id, scope.agent_id, scope.session_id, scope.run_id, name, type_, properties,
        )
        return _entity(row), bool(row["created"])

    async def create_relation(self, user_id: str, source_id: str, target_id: str, type_: str,
                              properties: dict[str, Any], valid_from: datetime | None,
                              valid_to: datetime | None) -> Relation:
        ids = [entity_uuid(source_id), entity_uuid(target_id)]
        owned = await self._pool.fetchval(
            f"SELECT count(DISTINCT id) FROM {self._s}.graph_entities WHERE user_id=$1 AND id = ANY($2::uuid[])",
            user_id, ids)
        if owned != len(set(ids)):
            raise NotFound("source or target entity not found")
        row = await self._pool.fetchrow(
            f"INSERT INTO {self._s}.graph_relations (id, user_id, source_id, target_id, type, properties, valid_from,"
            f" valid_to) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING {_R}",
            uuid.uuid4(), user_id, ids[0], ids[1], type_, properties, valid_from, valid_to)
        return _relation(row)

    async def _entity_row(self, user_id: str, entity_id: str) -> Entity:
        row = await self._pool.fetchrow(
            f"SELECT {_E} FROM {self._s}.graph_entities WHERE id=$1 AND user_id=$2", entity_uuid(entity_id), user_id)
        if row is None:
            raise NotFound(f"entity {entity_id} not found")
        return _entity(row)

    async def neighbourhood(self, user_id: str, entity_id: str, depth: int) -> Subgraph:
        entity = await self._entity_row(user_id, entity_id)
        rows = await self._pool.fetch(
            f"""WITH RECURSIVE walk(entity_id, depth) AS (
                    SELECT $1::uuid, 0
                    UNION
                    SELECT CASE WHEN r.source_id = w.entity_id THEN r.target_id ELSE r.source_id END, w.depth + 1
                    FROM walk w JOIN {self._s}.graph_relations r
                      ON r.user_id = $2 AND (r.source_id = w.entity_id OR r.target_id = w.entity_id)
                    WHERE w.depth < $3)
                SELECT DISTINCT entity_id FROM walk""", entity.id, user_id, depth)
        ids = [r["entity_id"] for r in rows]
        entities = await self._pool.fetch(
            f"SELECT {_E} FROM {self._s}.graph_entities WHERE user_id=$1 AND id = ANY($2::uuid[]) AND id <> $3"
            " ORDER BY name, type", user_id, ids, uuid.UUID(entity.id))
        relations = await self._pool.fetch(
            f"SELECT {_R} FROM {self._s}.graph_relations WHERE user_id=$1 AND source_id = ANY($2::uuid[])"
            " AND target_id = ANY($2::uuid[]) ORDER BY created_at, id", user_id, ids) if depth > 0 else []
        return Subgraph(entity, [_entity(r) for r in entities], [_relation(r) for r in relations])

    async def shortest_path(self, user_id: str, from_id: str, to_id: str, max_depth: int) -> Path:
        start = await self._entity_row(user_id, from_id)
        end = await self._entity_row(user_id, to_id)
        if start.id == end.id:
            return Path([start], [])
        row = await self._pool.fetchrow(
            f"""WITH RECURSIVE bfs(entity_id, path, rels, depth) AS (
                    SELECT $1::uuid, ARRAY[$1::uuid], ARRAY[]::uuid[], 0
                    UNION ALL
                    SELECT n.next_id, b.path || n.next_id, b.rels || n.rel_id, b.depth + 1
                    FROM bfs b
                    CROSS JOIN LATERAL (
                        SELECT r.id AS rel_id,
                               CASE WHEN r.source_id = b.entity_id THEN r.target_id ELSE r.source_id END AS next_id
                        FROM {self._s}.graph_relations r
                        WHERE r.user_id = $3 AND (r.source_id = b.entity_id OR r.target_id = b.entity_id)) n
                    WHERE b.depth < $4 AND b.entity_id <> $2 AND NOT n.next_id = ANY(b.path))
                SELECT path, rels FROM bfs WHERE entity_id = $2 ORDER BY depth LIMIT 1""",
            uuid.UUID(start.id), uuid.UUID(end.id), user_id, max_depth)
        if row is None:
            return Path()
        entities = {str(r["id"]): _entity(r) for r in await self._pool.fetch(
            f"SELECT {_E} FROM {self._s}.graph_entities WHERE user_id=$1 AND id = ANY($2::uuid[])",
            user_id, row["path"])}
        relations = {str(r["id"]): _relation(r) for r in await self._pool.fetch(
            f"SELECT {_R} FROM {self._s}.graph_relations WHERE user_id=$1 AND id = ANY($2::uuid[])",
            user_id, row["rels"])}
        return Path([entities[str(i)] for i in row["path"]], [relations[str(i)] for i in row["rels"]])

    async def list_entities(self, user_id: str, type_: str, name: str, limit: int,
                            offset: int) -> tuple[list[Entity], int]:
        args: list[Any] = [user_id]
        where = "user_id=$1"
        if type_:
            args.append(type_)
            where += f" AND type=${len(args)}"
        if name:
            args.append(name)
            where += f" AND name=${len(args)}"
        total = await self._pool.fetchval(f"SELECT count(*) FROM {self._s}.graph_entities WHERE {where}", *args)
        rows = await self._pool.fetch(
            f"SELECT {_E} FROM {self._s}.graph_entities WHERE {where} ORDER BY name, type, id"
            f" LIMIT {int(limit)} OFFSET {int(offset)}", *args)
        return [_entity(r) for r in rows], int(total)

    async def delete_entity(self, user_id: str, entity_id: str) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            entity_key = entity_uuid(entity_id)
            removed = await conn.fetchval(
                f"SELECT count(*) FROM {self._s}.graph_relations WHERE user_id=$1 AND (source_id=$2 OR target_id=$2)",
                user_id, entity_key)
            status = await conn.execute(
                f"DELETE FROM {self._s}.graph_entities WHERE id=$1 AND user_id=$2", entity_key, user_id)
            if status.endswith(" 0"):
                raise NotFound(f"entity {entity_id} not found")
            return int(removed)

    async def delete_relation(self, user_id: str, relation_id: str) -> None:
        status = await self._pool.execute(
            f"DELETE FROM {self._s}.graph_relations WHERE id=$1 AND user_id=$2",
            entity_uuid(relation_id, "relation"), user_id)
        if status.endswith(" 0"):
            raise NotFound(f"relation {relation_id} not found")

    async def counts(self, user_id: str) -> tuple[int, int]:
        row = await self._pool.fetchrow(
            f"SELECT (SELECT count(*) FROM {self._s}.graph_entities WHERE user_id=$1) AS e,"
            f" (SELECT count(*) FROM {self._s}.graph_relations WHERE user_id=$1) AS r", user_id)
        return int(row["e"]), int(row["r"])

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def close(self) -> None:
        return None
