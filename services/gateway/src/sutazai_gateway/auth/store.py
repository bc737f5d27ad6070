"""Users and API keys in the gateway's Postgres schema ``auth``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str | None
    password_hash: str
    is_active: bool
    is_admin: bool
    failed_login_attempts: int
    locked_until: datetime | None

    @property
    def roles(self) -> tuple[str, ...]:
        return ("admin", "user") if self.is_admin else ("user",)


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: str
    user_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class UsernameTakenError(Exception):
    pass


def _user(row: asyncpg.Record) -> User:
    return User(str(row["id"]), row["username"], row["email"], row["password_hash"], row["is_active"],
                row["is_admin"], row["failed_login_attempts"], row["locked_until"])


def _key(row: asyncpg.Record) -> ApiKeyRow:
    return ApiKeyRow(str(row["id"]), str(row["user_id"]), row["name"], row["prefix"], row["key_hash"],
                     row["created_at"], row["last_used_at"], row["revoked_at"])


class AuthStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def user_by_name(self, username: str) -> User | None:
        row = await self._pool.fetchrow("SELECT * FROM auth.users WHERE username = $1", username)
        return _user(row) if row else None

    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._pool.fetchrow("SELECT * FROM auth.users WHERE id = $1", uuid.UUID(user_id))
        return _user(row) if row else None

    async def create_user(self, username: str, password_hash: str, *, email: str | None, is_admin: bool) -> User:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO auth.users (id, username, email, password_hash, is_admin)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING *",
                uuid.uuid4(), username, email, password_hash, is_admin,
            )
        except asyncpg.UniqueViolationError as exc:
            raise UsernameTakenError(username) from exc
        assert row is not None
        return _user(row)

    async def record_failed_login(self, user_id: str, max_attempts: int, lock_for: timedelta) -> None:
        """Count a failure; at ``max_attempts`` lock the account and start counting afresh."""
        await self._pool.execute(
            "UPDATE auth.users SET"
            " failed_login_attempts = CASE WHEN failed_login_attempts + 1 >= $2 THEN 0"
            "   ELSE failed_login_attempts + 1 END,"
            " locked_until = CASE WHEN failed_login_attempts + 1 >= $2 THEN now() + $3 ELSE locked_until END"
            " WHERE id = $1",
            uuid.UUID(user_id), max_attempts, lock_for,
        )

    async def record_successful_login(self, user_id: str) -> None:
        await self._pool.execute(
            "UPDATE auth.users SET failed_login_attempts = 0, locked_until = NULL WHERE id = $1", uuid.UUID(user_id)
        )

    async def create_api_key(self, user_id: str, name: str, prefix: str, key_hash: str) -> ApiKeyRow:
        row = await self._pool.fetchrow(
            "INSERT INTO auth.api_keys (id, user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (prefix) DO NOTHING RETURNING *",
            uuid.uuid4(), uuid.UUID(user_id), name, prefix, key_hash,
        )
        if row is None:
            existing = await self.api_key_by_prefix(prefix)
            assert existing is not None
            return existing
        return _key(row)

    async def api_key_by_prefix(self, prefix: str) -> ApiKeyRow | None:
        row = await self._pool.fetchrow("SELECT * FROM auth.api_keys WHERE prefix = $1", prefix)
        return _key(row) if row else None

    async def api_keys_of(self, user_id: str) -> list[ApiKeyRow]:
        rows = await self._pool.fetch(
            "SELECT * FROM auth.api_keys WHERE user_id = $1 ORDER BY created_at DESC", uuid.UUID(user_id)
        )
        return [_key(r) for r in rows]

    async def revoke_api_key(self, user_id: str, key_id: str) -> bool:
        status = await self._pool.execute(
            "UPDATE auth.api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            uuid.UUID(key_id), uuid.UUID(user_id),
        )
        return status.endswith(" 1")

    async def list_users(self) -> list[User]:
        rows = await self._pool.fetch("SELECT * FROM auth.users ORDER BY created_at, username")
        return [_user(r) for r in rows]

    async def update_user(self, user_id: str, *, is_active: bool | None = None,
                          is_admin: bool | None = None) -> User | None:
        """Change the given fields; the user as it is afterwards, or None when there is no such user."""
        row = await self._pool.fetchrow(
            "UPDATE auth.users SET is_active = coalesce($2, is_active), is_admin = coalesce($3, is_admin)"
            " WHERE id = $1 RETURNING *",
            uuid.UUID(user_id), is_active, is_admin,
        )
        return _user(row) if row else None

    async def delete_user(self, user_id: str) -> bool:
        """Delete the user and (by the foreign key) their API keys."""
        status = await self._pool.execute("DELETE FROM auth.users WHERE id = $1", uuid.UUID(user_id))
        return status.endswith(" 1")

    async def record_key_use(self, used: dict[str, datetime]) -> None:
        """Set ``last_used_at`` of many keys (prefix -> when) in one statement; never moves it backwards."""
        if not used:
            return
        prefixes, stamps = zip(*used.items(), strict=True)
        await self._pool.execute(
            "UPDATE auth.api_keys AS k SET last_used_at = greatest(k.last_used_at, u.at)"
            " FROM unnest($1::text[], $2::timestamptz[]) AS u(prefix, at) WHERE k.prefix = u.prefix",
            list(prefixes), list(stamps), timeout=5,
        )
