"""Fixtures every test folder shares: the real servers the suite talks to.

Defaults are the servers this machine (and CI) runs on the standard ports; ``TEST_DATABASE_URL``,
``TEST_REDIS_URL`` and ``TEST_NATS_URL`` point the suite elsewhere. No test replaces a server with
an imitation.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest

# Servers a test starts register themselves (sutazai_runtime.grpc_server): in a bucket of this run's own,
# never in the registry of a platform running on the same NATS server. Stacks the system tests start
# name their own bucket (the launcher derives it from their database).
TEST_REGISTRY_BUCKET = os.environ.setdefault("SUTAZAI_DISCOVERY_BUCKET", f"test_registry_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session", autouse=True)
async def _drop_test_registry() -> AsyncIterator[None]:
    yield
    try:
        nc = await nats.connect(os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222"), connect_timeout=2,
                                max_reconnect_attempts=0)
    except Exception:
        return
    js = nc.jetstream()
    for stream in (f"KV_{TEST_REGISTRY_BUCKET}", f"KV_{TEST_REGISTRY_BUCKET}_external"):
        try:
            await js.delete_stream(stream)
        except Exception:
            pass
    await nc.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def nats_url() -> str:
    return os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
async def pg_pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=4, timeout=5)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def scratch_schema(pg_pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A schema name unique to the test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await pg_pool.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
