"""Fixtures of the task service's tests: the real Postgres (schema ``tasks`` in the test database)
and the real NATS, with streams under a namespace unique to each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from importlib.resources import files

import asyncpg
import pytest
from sutazai_runtime.nats import connect_nats, ensure_stream
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.store import TaskStore, pool_setup
from sutazai_tasks.streams import Names


@pytest.fixture
async def task_pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_url, max_size=8, **pool_setup())
    await apply_migrations(pool, "tasks", load_migrations(files("sutazai_tasks") / "migrations"))
    yield pool
    await pool.close()


@pytest.fixture
def store(task_pool: asyncpg.Pool) -> TaskStore:
    return TaskStore(task_pool)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[TaskBus]:
    nc = await connect_nats(nats_url, name="tasks-test")
    js = nc.jetstream(timeout=5)
    names = Names(f"t{uuid.uuid4().hex[:10]}")
    for stream in names.streams():
        await ensure_stream(js, stream)
    bus = TaskBus(nc, js, names)
    await bus.ensure_consumers()
    yield bus
    for stream in names.streams():
        await js.delete_stream(stream.name or "")
    await nc.close()
