"""Postgres adapter for memories and their history (schema ``memory``)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from sutazai_memory.model import Change, MemoryRecord, Scope

_COLUMNS = ("id, user_id, agent_id, session_id, run_id, collection, document_id, content, metadata, content_hash,"
            " created_at, updated_at")


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb as Python objects on every pooled connection."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _record(row: asyncpg.Record) -> MemoryRecord:
    return MemoryRecord(
        id=str(row["id"]), user_id=row["user_id"], content=row["content"], metadata=row["metadata"] or {},
        scope=Scope(row["agent_id"], row["session_id"], row["run_id"]), collection=row["collection"],
        document_id=row["document_id"], content_hash=row["content_hash"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class MemoryStore:
    def __init__(self, pool: asyncpg.Pool, schema: str = "memory") -> None:
        self.pool = pool
        self._s = schema

    async def insert(self, conn: asyncpg.Connection, record: MemoryRecord,
                     vector_collection: str) -> MemoryRecord | None:
        """The new row, or None when the scope already holds this content (nothing changes then)."""
        row = await conn.fetchrow(
            f"INSERT INTO {self._s}.memories (id, user_id, agent_id, session_id, run_id, collection, document_id,"
            " content, metadata, content_hash, vector_collection) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
            f" ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
            record.id, record.user_id, record.scope.agent_id, record.scope.session_id, record.scope.run_id,
            record.collection, record.document_id, record.content, record.metadata, record.content_hash,
            vector_collection,
        )
        if row is None:
            return None
        await self._history(conn, str(row["id"]), record.user_id, "ADD", None, record.content, None, record.metadata)
        return _record(row)

    async def find_existing(self, user_id: str, scope: Scope, collection: str, digest: str) -> MemoryRecord | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM {self._s}.memories WHERE user_id=$1 AND agent_id=$2 AND session_id=$3"
            " AND run_id=$4 AND collection=$5 AND content_hash=$6",
            user_id, scope.agent_id, scope.session_id, scope.run_id, collection, digest,
        )
        return _record(row) if row else None

    async def get(self, user_id: str, memory_id: str, conn: asyncpg.Connection | None = None,
                  *, for_update: bool = False) -> tuple[MemoryRecord, str] | None:
        row = await (conn or self.pool).fetchrow(
            f"SELECT {_COLUMNS}, vector_collection FROM {self._s}.memories WHERE id=$1 AND user_id=$2"
            + (" FOR UPDATE" if for_update else ""), memory_id, user_id,
        )
        return (_record(row), row["vector_collection"]) if row else None

    async def list(self, user_id: str, scope: Scope, collection: str | None, limit: int,
                   offset: int) -> tuple[list[MemoryRecord], int]:
        where, args = ["user_id=$1"], [user_id]
        for key, value in scope.conditions().items():
            args.append(value)
            where.append(f"{key}=${len(args)}")
        if collection is not None:
            args.append(collection)
            where.append(f"collection=${len(args)}")
        clause = " AND ".join(where)
        total = await self.pool.fetchval(f"SELECT count(*) FROM {self._s}.memories WHERE {clause}", *args)
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self._s}.memories WHERE {clause} ORDER BY created_at DESC, id"
            f" LIMIT {int(limit)} OFFSET {int(offset)}", *args,
        )
        return [_record(r) for r in rows], int(total)

    async def update(self, conn: asyncpg.Connection, old: MemoryRecord, content: str, digest: str,
                     metadata: dict[str, Any]) -> MemoryRecord:
        row = await conn.fetchrow(
            f"UPDATE {self._s}.memories SET content=$3, content_hash=$4, metadata=$5, updated_at=now()"
            f" WHERE id=$1 AND user_id=$2 RETURNING {_COLUMNS}", old.id, old.user_id, content, digest, metadata,
        )
        await self._history(conn, old.id, old.user_id, "UPDATE", old.content, content, old.metadata, metadata)
        return _record(row)

    async def delete(self, conn: asyncpg.Connection, record: MemoryRecord) -> None:
        await conn.execute(f"DELETE FROM {self._s}.memories WHERE id=$1 AND user_id=$2", record.id, record.user_id)
        await self._history(conn, record.id, record.user_id, "DELETE", record.content, None, record.metadata, None)

    async def history(self, user_id: str, memory_id: str) -> list[Change]:
        rows = await self.pool.fetch(
            f"SELECT memory_id, event, old_content, new_content, old_metadata, new_metadata, at"
            f" FROM {self._s}.memory_history WHERE memory_id=$1 AND user_id=$2 ORDER BY id", memory_id, user_id,
        )
        return [Change(str(r["memory_id"]), r["event"], r["old_content"], r["new_content"], r["old_metadata"],
                       r["new_metadata"], r["at"]) for r in rows]

    async def collections(self, user_id: str) -> list[tuple[str, int, str]]:
        rows = await self.pool.fetch(
            f"SELECT collection, vector_collection, count(*) AS n FROM {self._s}.memories WHERE user_id=$1"
            " GROUP BY collection, vector_collection ORDER BY collection", user_id,
        )
        return [(r["collection"], int(r["n"]), r["vector_collection"]) for r in rows]

    async def count(self, user_id: str) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {self._s}.memories WHERE user_id=$1", user_id))

    async def _history(self, conn: asyncpg.Connection, memory_id: str, user_id: str, event: str,
                       old_content: str | None, new_content: str | None, old_metadata: dict[str, Any] | None,
                       new_metadata: dict[str, Any] | None) -> None:
        await conn.execute(
            f"INSERT INTO {self._s}.memory_history (memory_id, user_id, event, old_content, new_content,"
            " old_metadata, new_metadata) VALUES ($1,$2,$3,$4,$5,$6,$7)",
            memory_id, user_id, event, old_content, new_content, old_metadata, new_metadata,
        )
