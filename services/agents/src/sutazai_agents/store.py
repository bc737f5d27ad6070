"""Agents created over the API, in the table ``<schema>.agents`` (schema ``agents`` in production)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import asyncpg

from sutazai_agents.definitions import AgentDefinition
from sutazai_agents.errors import AgentExistsError, AgentNotFoundError
from sutazai_agents.registry import Agent

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class AgentStore:
    def __init__(self, pool: asyncpg.Pool, schema: str = "agents") -> None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self._pool = pool
        self._table = f'"{schema}".agents'

    @staticmethod
    def _agent(row: asyncpg.Record) -> Agent:
        fields = json.loads(row["definition"])
        return Agent(AgentDefinition.model_validate({**fields, "id": row["id"]}), "api", row["updated_at"])

    @staticmethod
    def _json(definition: AgentDefinition) -> str:
        return definition.model_dump_json(exclude={"id"})

    async def list(self) -> list[Agent]:
        rows = await self._pool.fetch(f"SELECT id, definition, updated_at FROM {self._table} ORDER BY id")
        return [self._agent(r) for r in rows]

    async def get(self, agent_id: str) -> Agent | None:
        row = await self._pool.fetchrow(
            f"SELECT id, definition, updated_at FROM {self._table} WHERE id = $1", agent_id
        )
        return None if row is None else self._agent(row)

    async def create(self, definition: AgentDefinition, created_by: str) -> Agent:
        try:
            row = await self._pool.fetchrow(
                f"INSERT INTO {self._table} (id, definition, created_by) VALUES ($1, $2::jsonb, $3)"
                " RETURNING id, definition, updated_at",
                definition.id, self._json(definition), created_by,
            )
        except asyncpg.UniqueViolationError:
            raise AgentExistsError(definition.id, "api") from None
        assert row is not None
        return self._agent(row)

    async def update(self, definition: AgentDefinition) -> Agent:
        row = await self._pool.fetchrow(
            f"UPDATE {self._table} SET definition = $2::jsonb, updated_at = now() WHERE id = $1"
            " RETURNING id, definition, updated_at",
            definition.id, self._json(definition),
        )
        if row is None:
            raise AgentNotFoundError(definition.id)
        return self._agent(row)

    async def delete(self, agent_id: str) -> bool:
        deleted: datetime | None = await self._pool.fetchval(
            f"DELETE FROM {self._table} WHERE id = $1 RETURNING updated_at", agent_id
        )
        return deleted is not None
