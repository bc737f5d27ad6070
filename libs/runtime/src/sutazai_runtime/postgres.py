"""An asyncpg pool and versioned SQL migrations, one schema per service.

Migrations are files ``NNNN_short_name.sql`` in a package folder of the service. Each runs once, in
its own transaction, with ``search_path`` set to the service's schema so the SQL names tables
without a schema. An advisory lock keeps two replicas starting at once from racing.

Why not Alembic: it needs SQLAlchemy and a sync driver; our services speak asyncpg only, and plain
ordered SQL files are all a service schema needs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import asyncpg

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(RuntimeError):
    """A migration folder is malformed, or a migration failed to apply."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout_s: float = 5.0,
    command_timeout_s: float = 30.0, init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> asyncpg.Pool:
    """A pool whose every connection and command has a deadline; ``init`` runs on each new connection."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, timeout=connect_timeout_s,
        command_timeout=command_timeout_s, init=init,
    )
    assert pool is not None
    return pool


def load_migrations(folder: Traversable) -> list[Migration]:
    """The migrations in ``folder``, ordered by version; a bad name or a repeated version is an error."""
    migrations: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files are named NNNN_short_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{entry.name}: version {version} appears twice")
        migrations[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


def _lock_key(schema: str) -> int:
    return int.from_bytes(hashlib.sha256(f"sutazai-migrate:{schema}".encode()).digest()[:8], "big", signed=True)


async def apply_migrations(pool: asyncpg.Pool, schema: str, migrations: list[Migration]) -> list[int]:
    """Apply the migrations not yet recorded in ``<schema>.schema_migrations``; returns their versions."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}")
    applied_now: list[int] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')}
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                    try:
                        await conn.execute(migration.sql)
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(
                            f"{schema} migration {migration.version:04d}_{migration.name} failed: {exc}"
                        ) from exc
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                        migration.version, migration.name,
                    )
                applied_now.append(migration.version)
                log.info("applied migration", extra={"schema": schema, "version": migration.version})
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    return applied_now
