"""Login, lockout, refresh and API keys against the real PostgreSQL."""

import uuid
from collections.abc import AsyncIterator
from importlib.resources import files

import asyncpg
import pytest
from sutazai_gateway.auth.service import AccountLockedError, Authenticator, AuthError, bootstrap_admin
from sutazai_gateway.auth.store import AuthStore, UsernameTakenError
from sutazai_runtime.postgres import apply_migrations, load_migrations

SECRET = "s" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
async def auth(pg_pool: asyncpg.Pool) -> AsyncIterator[Authenticator]:
    await apply_migrations(pg_pool, "auth", load_migrations(files("sutazai_gateway") / "migrations"))
    yield Authenticator(AuthStore(pg_pool), SECRET, access_ttl_s=60, refresh_ttl_s=600, key_cache_ttl_s=0)


def _name() -> str:
    return f"user_{uuid.uuid4().hex[:10]}"


async def test_login_gives_tokens_that_identify_the_user(auth: Authenticator) -> None:
    name = _name()
    user = await auth.create_user(name, "password-1", email=None, is_admin=False)
    pair = await auth.login(name, "password-1")
    identity = await auth.identify(pair.access_token)
    assert identity.user_id == user.id and not identity.is_admin
    refreshed = await auth.refresh(pair.refresh_token)
    assert (await auth.identify(refreshed.access_token)).user_id == user.id
    with pytest.raises(AuthError):
        await auth.identify(pair.refresh_token)  # a refresh token is not an access token


async def test_wrong_passwords_lock_the_account_after_five(auth: Authenticator, pg_pool: asyncpg.Pool) -> None:
    name = _name()
    await auth.create_user(name, "password-1", email=None, is_admin=False)
    for _ in range(5):
        with pytest.raises(AuthError, match="wrong username or password"):
            await auth.login(name, "nope")
    with pytest.raises(AccountLockedError):
        await auth.login(name, "password-1")  # even the right password, while locked
    await pg_pool.execute("UPDATE auth.users SET locked_until = now() - interval '1 second' WHERE username = $1", name)
    assert (await auth.login(name, "password-1")).access_token


async def test_unknown_user_and_duplicate_username(auth: Authenticator) -> None:
    with pytest.raises(AuthError, match="wrong username or password"):
        await auth.login(_name(), "whatever")
    name = _name()
    await auth.create_user(name, "password-1", email=None, is_admin=False)
    with pytest.raises(UsernameTakenError):
        await auth.create_user(name, "password-2", email=None, is_admin=True)


async def test_api_keys_identify_until_revoked(auth: Authenticator) -> None:
    user = await auth.create_user(_name(), "password-1", email=None, is_admin=True)
    key_id, key = await auth.create_api_key(user.id, "ci")
    identity = await auth.identify(key)
    assert identity.user_id == user.id and identity.is_admin
    assert await auth.store.revoke_api_key(user.id, key_id)
    with pytest.raises(AuthError, match="revoked"):
        await auth.identify(key)
    with pytest.raises(AuthError):
        await auth.identify("sk-sutazai-00000000-" + "A" * 43)


async def test_bootstrap_creates_the_admin_once_and_keeps_its_password(auth: Authenticator) -> None:
    name = _name()
    key = f"sk-sutazai-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex}0123456789a"
    await bootstrap_admin(auth.store, name, "first-password", key)
    await bootstrap_admin(auth.store, name, "second-password", key)
    assert await auth.login(name, "first-password")
    with pytest.raises(AuthError):
        await auth.login(name, "second-password")
    assert (await auth.identify(key)).is_admin
