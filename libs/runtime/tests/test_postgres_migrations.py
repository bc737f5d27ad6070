"""Migrations against the real PostgreSQL server."""

from pathlib import Path

import asyncpg
import pytest
from sutazai_runtime.postgres import Migration, MigrationError, apply_migrations, load_migrations


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


def test_migrations_load_in_version_order(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", {"0002_b.sql": "SELECT 2", "0001_a.sql": "SELECT 1", "README.md": "x"})
    assert [m.version for m in load_migrations(folder)] == [1, 2]


@pytest.mark.parametrize("bad", ["1_a.sql", "0001-a.sql", "0001_A.sql"])
def test_a_badly_named_migration_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(MigrationError, match="NNNN_short_name"):
        load_migrations(_write(tmp_path / "m", {bad: "SELECT 1"}))


def test_a_repeated_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="twice"):
        load_migrations(_write(tmp_path / "m", {"0001_a.sql": "", "0001_b.sql": ""}))


async def test_migrations_apply_once_into_their_schema(pg_pool: asyncpg.Pool, scratch_schema: str) -> None:
    migrations = [
        Migration(1, "items", "CREATE TABLE items (id int PRIMARY KEY)"),
        Migration(2, "seed", "INSERT INTO items VALUES (1), (2)"),
    ]
    assert await apply_migrations(pg_pool, scratch_schema, migrations) == [1, 2]
    assert await apply_migrations(pg_pool, scratch_schema, migrations) == []
    assert await pg_pool.fetchval(f'SELECT count(*) FROM "{scratch_schema}".items') == 2
    more = [*migrations, Migration(3, "col", "ALTER TABLE items ADD COLUMN name text")]
    assert await apply_migrations(pg_pool, scratch_schema, more) == [3]


async def test_a_failing_migration_changes_nothing_and_is_not_recorded(
    pg_pool: asyncpg.Pool, scratch_schema: str
) -> None:
    good = Migration(1, "items", "CREATE TABLE items (id int PRIMARY KEY)")
    bad = Migration(2, "broken", "CREATE TABLE half (id int); SELECT * FROM no_such_table")
    with pytest.raises(MigrationError, match="0002_broken"):
        await apply_migrations(pg_pool, scratch_schema, [good, bad])
    versions = await pg_pool.fetch(f'SELECT version FROM "{scratch_schema}".schema_migrations')
    assert [r["version"] for r in versions] == [1]
    assert await pg_pool.fetchval("SELECT to_regclass($1)", f"{scratch_schema}.half") is None


async def test_an_invalid_schema_name_is_refused(pg_pool: asyncpg.Pool) -> None:
    with pytest.raises(MigrationError, match="invalid schema"):
        await apply_migrations(pg_pool, 'x"; DROP TABLE y; --', [])
