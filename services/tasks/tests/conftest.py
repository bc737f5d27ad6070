"""Fixtures of the task service's tests: the real Postgres (schema ``tasks`` in the test database)
and the real NATS, with streams under a namespace unique to each test."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

import asyncpg
import pytest
from sutazai_runtime.nats import connect_nats, ensure_stream
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.handlers import Handler
from sutazai_tasks.model import TaskRow
from sutazai_tasks.store import TaskStore, pool_setup
from sutazai_tasks.streams import Names
from sutazai_tasks.worker import Worker


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
        await ensure_stream(js, stream, disposable=names.disposable(stream.name or ""))
    bus = TaskBus(nc, js, names)
    await bus.ensure_consumers()
    yield bus
    for stream in names.streams():
        await js.delete_stream(stream.name or "")
    await nc.close()


# Helpers the worker and orchestration tests share, handed out as fixtures (test folders are not packages).
@contextlib.asynccontextmanager
async def _worker(store: TaskStore, bus: TaskBus, handlers: dict[str, Handler], **kw: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    run = asyncio.create_task(Worker(store, bus, handlers, retry_base_s=0.05, **kw).run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)


async def _until_final(store: TaskStore, task_id: str, timeout_s: float = 15) -> TaskRow:
    async with asyncio.timeout(timeout_s):
        while True:
            task = await store.get(task_id)
            assert task is not None
            if task.terminal:
                return task
            await asyncio.sleep(0.05)


@pytest.fixture
def running_worker():  # type: ignore[no-untyped-def]
    return _worker


@pytest.fixture
def until_final():  # type: ignore[no-untyped-def]
    return _until_final


class Stoppable:
    """A handler that runs until cancelled: ``started`` once a worker runs it, ``stopped`` once it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def __call__(self, task: TaskRow, progress: Any) -> Any:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.stopped.set()
            raise
        return "too late"


@pytest.fixture
def stoppable() -> Stoppable:
    return Stoppable()
