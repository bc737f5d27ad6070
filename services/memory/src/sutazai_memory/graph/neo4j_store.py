"""The graph in Neo4j through the official ``neo4j`` driver (async, Cypher), used when ``NEO4J_URI`` is set.

Entities are ``(:Entity)`` nodes keyed by ``id`` (a uniqueness constraint) and upserted by
``(user_id, agent_id, session_id, run_id, name, type)`` with ``MERGE``; relations are ``[:RELATES]``
relationships carrying their own ``type``, so any relation type needs no schema change. Properties are
kept as a JSON string (Neo4j properties cannot nest). Every query matches ``user_id``: a caller never
reaches another user's nodes, even through a path."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from neo4j import AsyncGraphDatabase, AsyncManagedTransaction

from sutazai_memory.errors import NotFound
from sutazai_memory.graph.base import Entity, Path, Relation, Subgraph, entity_uuid
from sutazai_memory.model import Scope


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return value.to_native() if hasattr(value, "to_native") else value


def _entity(node: Any) -> Entity:
    return Entity(node["id"], node["name"], node["type"], json.loads(node.get("properties") or "{}"),
                  Scope(node.get("agent_id", ""), node.get("session_id", ""), node.get("run_id", "")),
                  _time(node.get("created_at")), _time(node.get("updated_at")))


def _relation(rel: Any, source_id: str, target_id: str) -> Relation:
    return Relation(rel["id"], source_id, target_id, rel["type"], json.loads(rel.get("properties") or "{}"),
                    _time(rel.get("valid_from")), _time(rel.get("valid_to")), _time(rel.get("created_at")))


class Neo4jGraph:
    name = "neo4j"

    def __init__(self, uri: str, user: str, password: str, database: str | None = None,
                 timeout_s: float = 10.0) -> None:
        self._driver = AsyncGraphDatabase.driver(uri, auth=(user, password), connection_timeout=timeout_s,
                                                 connection_acquisition_timeout=timeout_s)
        self._database = database
        self._timeout_s = timeout_s

    async def setup(self) -> None:
        await self._driver.verify_connectivity()
        await self._driver.execute_query(
            "CREATE CONSTRAINT sutazai_entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE",
            database_=self._database)
        await self._driver.execute_query(
            "CREATE INDEX sutazai_entity_key IF NOT EXISTS FOR (e:Entity) ON (e.user_id, e.name, e.type)",
            database_=self._database)

    async def _write(self, fn: Any, *args: Any) -> Any:
        async with self._driver.session(database=self._database) as session:
            return await session.execute_write(fn, *args)

    async def _read(self, fn: Any, *args: Any) -> Any:
        async with self._driver.session(database=self._database) as session:
            return await session.execute_read(fn, *args)

    async def upsert_entity(self, user_id: str, name: str, type_: str, properties: dict[str, Any],
                            scope: Scope) -> tuple[Entity, bool]:
        async def work(tx: AsyncManagedTransaction) -> tuple[Entity, bool]:
            result = await tx.run(
                "MERGE (e:Entity {user_id: $u, agent_id: $a, session_id: $s, run_id: $r, name: $n, type: $t})"
                " ON CREATE SET e.id = $id, e.properties = '{}', e.created_at = datetime(), e.new = true"
                " ON MATCH SET e.new = false"
                " RETURN e", u=user_id, a=scope.agent_id, s=scope.session_id, r=scope.run_id, n=name, t=type_,
                id=str(uuid.uuid4()))
            node = (await result.single(strict=True))["e"]
            merged = {**json.loads(node.get("properties") or "{}"), **properties}
            result = await tx.run("MATCH (e:Entity {id: $id}) SET e.properties = $p, e.updated_at = datetime()"
                                  " REMOVE e.new RETURN e", id=node["id"], p=json.dumps(merged))
            return _entity((await result.single(strict=True))["e"]), bool(node["new"])

        result: tuple[Entity, bool] = await self._write(work)
        return result

    async def create_relation(self, user_id: str, source_id: str, target_id: str, type_: str,
                              properties: dict[str, Any], valid_from: datetime | None,
                              valid_to: datetime | None) -> Relation:
        source, target = entity_uuid(source_id), entity_uuid(target_id)

        async def work(tx: AsyncManagedTransaction) -> Relation:
            result = await tx.run(
                "MATCH (a:Entity {id: $s, user_id: $u}), (b:Entity {id: $t, user_id: $u})"
                " CREATE (a)-[r:RELATES {id: $id, user_id: $u, type: $type, properties: $p, valid_from: $vf,"
                " valid_to: $vt, created_at: datetime()}]->(b) RETURN r",
                s=source, t=target, u=user_id, id=str(uuid.uuid4()), type=type_, p=json.dumps(properties),
                vf=valid_from, vt=valid_to)
            record = await result.single()
            if record is None:
                raise NotFound("source or target entity not found")
            return _relation(record["r"], source, target)

        relation: Relation = await self._write(work)
        return relation

    async def _get(self, tx: AsyncManagedTransaction, user_id: str, entity_id: str) -> Entity:
        result = await tx.run("MATCH (e:Entity {id: $id, user_id: $u}) RETURN e", id=entity_uuid(entity_id),
                              u=user_id)
        record = await result.single()
        if record is None:
            raise NotFound(f"entity {entity_id} not found")
        return _entity(record["e"])

    async def neighbourhood(self, user_id: str, entity_id: str, depth: int) -> Subgraph:
        async def work(tx: AsyncManagedTransaction) -> Subgraph:
            entity = await self._get(tx, user_id, entity_id)
            if depth == 0:
                return Subgraph(entity)
            result = await tx.run(
                f"MATCH (e:Entity {{id: $id, user_id: $u}})-[rs:RELATES*1..{int(depth)}]-(n:Entity)"
                " WHERE all(r IN rs WHERE r.user_id = $u) AND n.user_id = $u"
                " UNWIND rs AS r RETURN DISTINCT n, r, startNode(r).id AS s, endNode(r).id AS t",
                id=entity.id, u=user_id)
            neighbours: dict[str, Entity] = {}
            relations: dict[str, Relation] = {}
            async for record in result:
                node = _entity(record["n"])
                if node.id != entity.id:
                    neighbours[node.id] = node
                rel = _relation(record["r"], record["s"], record["t"])
                relations[rel.id] = rel
            oldest = datetime.min.replace(tzinfo=UTC)
            return Subgraph(entity, sorted(neighbours.values(), key=lambda e: (e.name, e.type)),
                            sorted(relations.values(), key=lambda r: (r.created_at or oldest, r.id)))

        subgraph: Subgraph = await self._read(work)
        return subgraph

    async def shortest_path(self, user_id: str, from_id: str, to_id: str, max_depth: int) -> Path:
        async def work(tx: AsyncManagedTransaction) -> Path:
            start = await self._get(tx, user_id, from_id)
            end = await self._get(tx, user_id, to_id)
            if start.id == end.id:
                return Path([start], [])
            result = await tx.run(
                "MATCH (a:Entity {id: $a, user_id: $u}), (b:Entity {id: $b, user_id: $u}),"
                f" p = shortestPath((a)-[:RELATES*..{int(max_depth)}]-(b))"
                " WHERE all(r IN relationships(p) WHERE r.user_id = $u)"
                " RETURN nodes(p) AS ns, [r IN relationships(p) | [r, startNode(r).id, endNode(r).id]] AS rs",
                a=start.id, b=end.id, u=user_id)
            record = await result.single()
            if record is None:
                return Path()
            return Path([_entity(n) for n in record["ns"]], [_relation(r, s, t) for r, s, t in record["rs"]])

        path: Path = await self._read(work)
        return path

    async def list_entities(self, user_id: str, type_: str, name: str, limit: int,
                            offset: int) -> tuple[list[Entity], int]:
        where = "e.user_id = $u" + (" AND e.type = $t" if type_ else "") + (" AND e.name = $n" if name else "")

        async def work(tx: AsyncManagedTransaction) -> tuple[list[Entity], int]:
            total = await (await tx.run(f"MATCH (e:Entity) WHERE {where} RETURN count(e) AS c",
                                        u=user_id, t=type_, n=name)).single(strict=True)
            result = await tx.run(f"MATCH (e:Entity) WHERE {where} RETURN e ORDER BY e.name, e.type, e.id"
                                  " SKIP $o LIMIT $l", u=user_id, t=type_, n=name, o=offset, l=limit)
            return [_entity(r["e"]) async for r in result], int(total["c"])

        out: tuple[list[Entity], int] = await self._read(work)
        return out

    async def delete_entity(self, user_id: str, entity_id: str) -> int:
        async def work(tx: AsyncManagedTransaction) -> int:
            result = await tx.run(
                "MATCH (e:Entity {id: $id, user_id: $u}) OPTIONAL MATCH (e)-[r:RELATES]-()"
                " WITH e, count(r) AS n DETACH DELETE e RETURN n", id=entity_uuid(entity_id), u=user_id)
            record = await result.single()
            if record is None:
                raise NotFound(f"entity {entity_id} not found")
            return int(record["n"])

        removed: int = await self._write(work)
        return removed

    async def delete_relation(self, user_id: str, relation_id: str) -> None:
        async def work(tx: AsyncManagedTransaction) -> None:
            result = await tx.run("MATCH ()-[r:RELATES {id: $id, user_id: $u}]-() DELETE r RETURN count(r) AS c",
                                  id=entity_uuid(relation_id, "relation"), u=user_id)
            record = await result.single()
            if record is None or not record["c"]:
                raise NotFound(f"relation {relation_id} not found")

        await self._write(work)

    async def counts(self, user_id: str) -> tuple[int, int]:
        async def work(tx: AsyncManagedTransaction) -> tuple[int, int]:
            e = await (await tx.run("MATCH (e:Entity {user_id: $u}) RETURN count(e) AS c", u=user_id)
                       ).single(strict=True)
            r = await (await tx.run("MATCH ()-[r:RELATES {user_id: $u}]->() RETURN count(r) AS c", u=user_id)
                       ).single(strict=True)
            return int(e["c"]), int(r["c"])

        out: tuple[int, int] = await self._read(work)
        return out

    async def ping(self) -> None:
        await self._driver.verify_connectivity()

    async def close(self) -> None:
        await self._driver.close()
