"""The servers a test session talks to, found or started as ``make run`` does (``infra.resolve``).

As nats.py's test harness does, so that a fresh laptop needs nothing running: for each of PostgreSQL,
Redis and NATS, a configured URL (``TEST_DATABASE_URL``, ``TEST_REDIS_URL``, ``TEST_NATS_URL``) is used
as given; else the machine's server on the standard port; else, or always with ``SUTAZAI_TEST_EMBEDDED=1``,
the embedded server from its wheel on a free port, stopped when the session ends.

Isolation from a development stack and from other sessions on the same machine: on a server the session
did not configure, it works in a database of its own (``pytest_<hex>``, dropped at the end) and in Redis
database 15; tests add their own key prefixes and NATS names on top.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from sutazai_stack import infra
from sutazai_stack.config import StackSettings
from sutazai_stack.infra import Origin, Resolved, with_path

log = logging.getLogger(__name__)

TEST_REDIS_DB = 15


@dataclass(frozen=True)
class Servers:
    """The session's PostgreSQL, Redis and NATS URLs, for a stack started by a test (``run_stack``)."""

    postgres: str
    redis: str
    nats: str


@dataclass
class SessionServer:
    """One server of the session: where it is, where it came from, and how to stop it."""

    name: str
    url: str
    origin: Origin
    resolved: Resolved
    own_database: str | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.own_database and self.origin != "embedded":
            asyncio.run(drop_database(self.url, self.own_database))
        if self.resolved.process is not None:
            self.resolved.process.stop(timeout_s=10.0)


def _part(name: str) -> infra.Part:
    return next(p for p in infra.PARTS if p.name == name)


def start(name: str, home: Path, *, configured: str | None, embedded: bool) -> SessionServer:
    """Find or start ``postgres``, ``redis`` or ``nats`` for a test session (see the module doc).

    Call from the thread that outlives the server (the embedded one dies with it: ``PR_SET_PDEATHSIG``)."""
    database = f"pytest_{uuid.uuid4().hex[:10]}"
    settings = StackSettings(  # explicit values: the shell's DATABASE_URL & co. are not the tests'
        home=home, embedded=embedded, free_ports=True, database_name=database, start_timeout_s=60,
        database_url=configured if name == "postgres" else None,
        redis_url=configured if name == "redis" else None,
        nats_url=configured if name == "nats" else None,
    )
    resolved = infra.resolve(_part(name), settings, home)  # postgres: creates the database when missing
    url, own = resolved.url, None
    if name == "postgres" and resolved.origin != "configured":
        own = database
    if name == "redis" and resolved.origin != "configured":
        url = with_path(url, str(TEST_REDIS_DB))
    log.info("test %s: %s (%s)", name, url, resolved.origin)
    return SessionServer(name, url, resolved.origin, resolved, own)


async def drop_database(url: str, database: str) -> None:
    """Drop ``database`` on the server of ``url``, closing its connections first."""
    admin = await asyncpg.connect(with_path(url, "postgres"), timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
