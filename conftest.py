"""Fixtures every test folder shares: the real servers the suite talks to.

For each of PostgreSQL, Redis and NATS (``sutazai_stack.harness``, the launcher's own resolution): the
URL in ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` / ``TEST_NATS_URL`` if set; else the machine's server
on the standard port; else, or always with ``SUTAZAI_TEST_EMBEDDED=1``, the embedded server from its
wheel on a free port, started on first use and stopped at the end of the session. On a server it did
not configure, the session has a database of its own (dropped afterwards) and Redis database 15.
No test replaces a server with an imitation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from sutazai_runtime.identity.keys import ensure_key_pair
from sutazai_stack import harness


def _server(name: str, variable: str) -> Iterator[harness.SessionServer]:
    # Not under pytest's basetemp: every pytest session that starts resets /tmp/pytest-of-<user> to
    # mode 0700, which locks out PostgreSQL (run as its own user when we are root) from its data.
    home = Path(tempfile.mkdtemp(prefix=f"sutazai-test-{name}-"))
    try:
        server = harness.start(
            name, home, configured=os.environ.get(variable) or None,
            embedded=os.environ.get("SUTAZAI_TEST_EMBEDDED", "") in ("1", "true", "yes"),
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)

# Servers a test starts register themselves (sutazai_runtime.grpc_server): in a bucket of this run's own,
# never in the registry of a platform running on the same NATS server. Stacks the system tests start
# name their own bucket (the launcher derives it from their database).
TEST_REGISTRY_BUCKET = os.environ.setdefault("SUTAZAI_DISCOVERY_BUCKET", f"test_registry_{uuid.uuid4().hex[:8]}")

# The identity keys of this run (sutazai_runtime.identity): services the tests start, and stacks the system
# tests launch, verify with its public key; tests sign their callers with its private key
# (sutazai_runtime.identity.testing).
_IDENTITY_KEYS = Path(tempfile.mkdtemp(prefix="sutazai-test-identity-"))
_private, _public = ensure_key_pair(_IDENTITY_KEYS)
os.environ.setdefault("SUTAZAI_IDENTITY_PRIVATE_KEY_FILE", str(_private))
os.environ.setdefault("SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE", str(_public))


@pytest.fixture(scope="session", autouse=True)
async def _drop_test_registry() -> AsyncIterator[None]:
    yield
    shutil.rmtree(_IDENTITY_KEYS, ignore_errors=True)
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
def postgres_server() -> Iterator[harness.SessionServer]:
    yield from _server("postgres", "TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[harness.SessionServer]:
    yield from _server("redis", "TEST_REDIS_URL")


@pytest.fixture(scope="session")
def nats_server() -> Iterator[harness.SessionServer]:
    yield from _server("nats", "TEST_NATS_URL")


@pytest.fixture(scope="session")
def postgres_url(postgres_server: harness.SessionServer) -> str:
    return postgres_server.url


@pytest.fixture(scope="session")
def redis_url(redis_server: harness.SessionServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def nats_url(nats_server: harness.SessionServer) -> str:
    return nats_server.url


@pytest.fixture(scope="session")
def stack_servers(postgres_url: str, redis_url: str, nats_url: str) -> harness.Servers:
    """The session's servers, for ``tests.system.stack_runner.run_stack``: each stack gets its own database."""
    return harness.Servers(postgres_url, redis_url, nats_url)


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
