"""Fixtures of the agents service's tests: its schema in a scratch schema of the real PostgreSQL."""

from __future__ import annotations

from importlib.resources import files

import asyncpg
import pytest
from sutazai_agents.store import AgentStore
from sutazai_runtime.postgres import apply_migrations, load_migrations


@pytest.fixture
async def store(pg_pool: asyncpg.Pool, scratch_schema: str) -> AgentStore:
    await apply_migrations(pg_pool, scratch_schema, load_migrations(files("sutazai_agents") / "migrations"))
    return AgentStore(pg_pool, scratch_schema)
