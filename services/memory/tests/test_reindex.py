"""Re-index: the vector folder is lost, PostgreSQL still holds every memory and document; ``reindex`` brings
search back (per user, isolation intact) and the documents' chunks; a second process on the same edge
folder is refused at once (the engine locks it). Its own schema and data folder, real servers and models."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sutazai_memory.config import Settings
from sutazai_memory.edge_index import EdgeIndex
from sutazai_memory.maintenance import reindex
from sutazai_memory.memory_store import init_connection
from sutazai_memory.model import NewMemory
from sutazai_memory.wiring import Built, build, migrate
from sutazai_runtime.discovery import DiscoverySettings, open_registry
from sutazai_runtime.identity import Identity


@pytest.fixture
async def setup(chat_addr: str, postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[Settings, Any, str]]:
    schema = f"mem_rx_{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=4, timeout=5, init=init_connection)
    assert pool is not None
    await migrate(pool, schema)
    settings = Settings(grpc_port=0, metrics_port=0, database_url=postgres_url, chat_addr=chat_addr,
                        data_dir=tmp_path / "data", chunk_tokens=60, chunk_overlap=10)
    try:
        yield settings, pool, schema
    finally:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()


async def _build(settings: Settings, pool: Any, schema: str) -> tuple[Built, Any]:
    registry = await open_registry(DiscoverySettings(backend="static"), static_addresses={"chat": settings.chat_addr})
    return await build(settings, pool, schema=schema, registry=registry), registry


async def _close(built: Built, registry: Any) -> None:
    for cleanup in built.cleanups:
        await cleanup()
    await registry.close()


async def _search(built: Built, user: str, query: str) -> list[str]:
    return [r.content for r, _ in await built.servicer.memories.search(Identity(user), query, limit=5)]


async def test_reindex_rebuilds_the_index_from_postgres(setup: tuple[Settings, Any, str]) -> None:
    settings, pool, schema = setup
    alice, bob = Identity("alice-rx"), Identity("bob-rx")
    built, registry = await _build(settings, pool, schema)
    await built.servicer.memories.add(alice, [NewMemory("The boiler code is KETTLE-311."),
                                             NewMemory("Alice parks on level 2.")])
    await built.servicer.memories.add(bob, [NewMemory("Bob's boiler code is KETTLE-999.")])
    doc = await built.servicer.documents.upload(alice, "notes.md", "", b"# Notes\n\nThe gate PIN is 4471.", [], "")
    await built.servicer.documents.wait_idle()
    assert await _search(built, alice.user_id, "KETTLE-311")
    await _close(built, registry)

    shutil.rmtree(settings.vectors_dir)  # the index is gone; PostgreSQL still holds everything
    built, registry = await _build(settings, pool, schema)
    try:
        assert await _search(built, alice.user_id, "KETTLE-311") == []
        done = await reindex(built, schema=schema)
        assert done.memories == 3 and done.documents == 1 and len(done.collections) == 1
        with pytest.raises(Exception, match=r"WAL|lock|WouldBlock"):  # a second opener of the folder is refused
            EdgeIndex(settings.vectors_dir)
        assert (await _search(built, alice.user_id, "KETTLE-311"))[0] == "The boiler code is KETTLE-311."
        assert all("Bob" not in c for c in await _search(built, alice.user_id, "boiler code KETTLE"))
        assert (await _search(built, bob.user_id, "boiler code"))[0] == "Bob's boiler code is KETTLE-999."
        again = await built.servicer.documents.get(alice, doc.id)
        assert again.status == "ready" and again.chunks == again.chunks_total >= 1
        hits = await built.servicer.documents.search(alice, "gate PIN", 3, [])
        assert hits and hits[0][0].id == doc.id
    finally:
        await _close(built, registry)
