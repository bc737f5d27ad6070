"""Credentials that stop working when they should, across gateway instances: two instances of the gateway app
share the real PostgreSQL and NATS (as two processes or two machines would); a key revoked, a user disabled or
deleted on one is refused on the other within a second, although the other had it in its credential cache
(10 s TTL); a disabled or deleted user's unfinished tasks are cancelled through the tasks service (here a
stand-in that verifies the gateway's proof and records the calls), and when it cannot be reached the account
change stands (disabled, never deleted first) with a 503 saying so. ``last_used_at`` of API keys is written in
batches, not per request."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from importlib.resources import files

import asyncpg
import grpc
import httpx
import pytest
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_gateway.auth import api_keys
from sutazai_gateway.auth.store import AuthStore
from sutazai_gateway.auth.usage import KeyUsage
from sutazai_gateway.config import Settings
from sutazai_gateway.main import create_app
from sutazai_runtime.discovery.settings import DiscoverySettings
from sutazai_runtime.identity import IdentityInterceptor, IdentitySettings, require_admin
from sutazai_runtime.postgres import apply_migrations, load_migrations

pytestmark = pytest.mark.timeout(120)
REFUSED_WITHIN_S = 1.0


def _settings(postgres_url: str, redis_url: str, nats_url: str, port: int, admin_key: str,
              **extra: object) -> Settings:
    return Settings(
        database_url=postgres_url, redis_url=redis_url, nats_url=nats_url, port=port, metrics_port=0,
        jwt_secret="j" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz", bootstrap_admin_username="revoker",
        bootstrap_admin_password="a-long-password", bootstrap_api_key=admin_key, **extra)


@contextlib.asynccontextmanager
async def _instance(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, serve_metrics=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            yield client


class _Tasks(tasks_pb2_grpc.TaskServiceServicer):
    """The tasks service's ``CancelOwnerTasks`` as the gateway sees it: behind the identity check every service
    runs, admin only; it records whose tasks it was asked to cancel, or answers UNAVAILABLE while ``down``."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.down = False

    async def CancelOwnerTasks(self, request: tasks_pb2.CancelOwnerTasksRequest, context: grpc.aio.ServicerContext
                               ) -> tasks_pb2.CancelOwnerTasksResponse:
        await require_admin(context)
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        self.cancelled.append(request.owner_id)
        return tasks_pb2.CancelOwnerTasksResponse(cancelled=2)


@pytest.fixture
async def tasks_service() -> AsyncIterator[tuple[_Tasks, int]]:
    servicer = _Tasks()
    server = grpc.aio.server(interceptors=[IdentityInterceptor(IdentitySettings().verifier())])
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


@pytest.fixture
async def pair(postgres_url: str, redis_url: str, nats_url: str, tasks_service: tuple[_Tasks, int]
               ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, dict[str, str]]]:
    """Two gateway instances of one platform (the same port: the same announcements)."""
    port, admin_key = 20000 + uuid.uuid4().int % 10000, api_keys.generate_key()
    settings = _settings(postgres_url, redis_url, nats_url, port, admin_key, tasks_addr=f"127.0.0.1:{tasks_service[1]}",
                         discovery=DiscoverySettings(backend="static"))
    async with _instance(settings) as one, _instance(settings) as other:
        yield one, other, {"X-API-Key": admin_key}


async def _user_with_credentials(gateway: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, dict[str, str],
                                                                                              dict[str, str]]:
    name = f"rev_{uuid.uuid4().hex[:10]}"
    created = await gateway.post("/api/v1/auth/users", headers=admin, json={"username": name,
                                                                            "password": "a-long-password"})
    assert created.status_code == 201, created.text
    token = (await gateway.post("/api/v1/auth/login", json={"username": name, "password": "a-long-password"})
             ).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    key = (await gateway.post("/api/v1/auth/api-keys", headers=bearer, json={"name": "k"})).json()
    return created.json()["id"], bearer, {"X-API-Key": key["key"], "key-id": key["id"]}


async def _refused_soon(gateway: httpx.AsyncClient, headers: dict[str, str]) -> float:
    """Seconds until ``headers`` get a 401 on ``gateway`` (fails past REFUSED_WITHIN_S)."""
    started = time.monotonic()
    while (status := (await gateway.get("/api/v1/auth/me", headers=headers)).status_code) != 401:
        assert status == 200
        assert time.monotonic() - started < REFUSED_WITHIN_S, "still accepted on the other instance"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _only_key(headers: dict[str, str]) -> dict[str, str]:
    return {"X-API-Key": headers["X-API-Key"]}


async def test_a_key_revoked_on_one_instance_is_refused_on_the_other(pair: tuple) -> None:
    one, other, admin = pair
    _, bearer, key = await _user_with_credentials(one, admin)
    assert (await other.get("/api/v1/auth/me", headers=_only_key(key))).status_code == 200  # cached there now
    assert (await one.delete(f"/api/v1/auth/api-keys/{key['key-id']}", headers=bearer)).status_code == 204
    await _refused_soon(other, _only_key(key))
    assert (await one.get("/api/v1/auth/me", headers=_only_key(key))).status_code == 401
    assert (await other.get("/api/v1/auth/me", headers=bearer)).status_code == 200  # the user's token still works


async def test_a_disabled_user_is_refused_everywhere_and_enabled_again(
    pair: tuple, tasks_service: tuple[_Tasks, int]
) -> None:
    one, other, admin = pair
    tasks, _ = tasks_service
    user_id, bearer, key = await _user_with_credentials(one, admin)
    for headers in (bearer, _only_key(key)):
        assert (await other.get("/api/v1/auth/me", headers=headers)).status_code == 200
    changed = await one.patch(f"/api/v1/auth/users/{user_id}", headers=admin, json={"is_active": False})
    assert changed.status_code == 200 and changed.json()["is_active"] is False
    assert tasks.cancelled == [user_id]  # its unfinished tasks, with the admin's proof
    for headers in (bearer, _only_key(key)):
        await _refused_soon(other, headers)
        assert (await one.get("/api/v1/auth/me", headers=headers)).status_code == 401
    assert (await one.patch(f"/api/v1/auth/users/{user_id}", headers=admin, json={"is_active": True})
            ).status_code == 200
    assert tasks.cancelled == [user_id]  # enabling cancels nothing
    for headers in (bearer, _only_key(key)):
        assert (await other.get("/api/v1/auth/me", headers=headers)).status_code == 200


async def test_with_the_tasks_service_away_the_account_change_stands_and_a_503_says_so(
    pair: tuple, tasks_service: tuple[_Tasks, int]
) -> None:
    one, other, admin = pair
    tasks, _ = tasks_service
    tasks.down = True
    user_id, bearer, _ = await _user_with_credentials(one, admin)
    changed = await one.patch(f"/api/v1/auth/users/{user_id}", headers=admin, json={"is_active": False})
    assert changed.status_code == 503 and changed.headers["content-type"] == "application/problem+json"
    assert "disabled" in changed.json()["detail"] and "repeat" in changed.json()["detail"]
    await _refused_soon(other, bearer)  # the credentials stop working all the same
    deleted = await one.delete(f"/api/v1/auth/users/{user_id}", headers=admin)
    assert deleted.status_code == 503 and "not deleted" in deleted.json()["detail"]
    listed = {u["id"]: u for u in (await one.get("/api/v1/auth/users", headers=admin)).json()}
    assert listed[user_id]["is_active"] is False  # disabled, and still there to delete once the service is back
    assert tasks.cancelled == []
    tasks.down = False
    assert (await one.delete(f"/api/v1/auth/users/{user_id}", headers=admin)).status_code == 204
    assert tasks.cancelled == [user_id]
    assert user_id not in {u["id"] for u in (await one.get("/api/v1/auth/users", headers=admin)).json()}


async def test_a_user_made_admin_or_not_gets_the_new_roles_at_once(pair: tuple) -> None:
    one, other, admin = pair
    user_id, bearer, _ = await _user_with_credentials(one, admin)
    assert (await other.get("/api/v1/auth/users", headers=bearer)).status_code == 403
    await one.patch(f"/api/v1/auth/users/{user_id}", headers=admin, json={"is_admin": True})
    started = time.monotonic()
    while (await other.get("/api/v1/auth/users", headers=bearer)).status_code != 200:
        assert time.monotonic() - started < REFUSED_WITHIN_S
        await asyncio.sleep(0.02)


async def test_a_deleted_user_is_refused_everywhere(pair: tuple, tasks_service: tuple[_Tasks, int]) -> None:
    one, other, admin = pair
    user_id, bearer, key = await _user_with_credentials(one, admin)
    for headers in (bearer, _only_key(key)):
        assert (await other.get("/api/v1/auth/me", headers=headers)).status_code == 200
    assert (await one.delete(f"/api/v1/auth/users/{user_id}", headers=admin)).status_code == 204
    for headers in (bearer, _only_key(key)):
        await _refused_soon(other, headers)
    assert (await one.delete(f"/api/v1/auth/users/{user_id}", headers=admin)).status_code == 404
    assert tasks_service[0].cancelled == [user_id]
    listed = (await other.get("/api/v1/auth/users", headers=admin)).json()
    assert user_id not in {u["id"] for u in listed}


async def test_user_changes_refuse_bad_input_and_self_lockout(pair: tuple) -> None:
    one, _, admin = pair
    me = (await one.get("/api/v1/auth/me", headers=admin)).json()
    assert (await one.patch(f"/api/v1/auth/users/{me['id']}", headers=admin, json={"is_active": False})
            ).status_code == 409
    assert (await one.delete(f"/api/v1/auth/users/{me['id']}", headers=admin)).status_code == 409
    assert (await one.patch(f"/api/v1/auth/users/{uuid.uuid4()}", headers=admin, json={"is_active": False})
            ).status_code == 404
    assert (await one.patch("/api/v1/auth/users/not-a-uuid", headers=admin, json={})).status_code == 422
    bad = await one.patch(f"/api/v1/auth/users/{uuid.uuid4()}", headers=admin, json={"is_active": "perhaps"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    _, bearer, _ = await _user_with_credentials(one, admin)
    assert (await one.patch(f"/api/v1/auth/users/{me['id']}", headers=bearer, json={"is_active": False})
            ).status_code == 403
    assert (await one.get("/api/v1/auth/me", headers=admin)).json()["is_active"] is True


async def test_last_used_at_is_written_in_batches_not_per_request(postgres_url: str, redis_url: str,
                                                                   nats_url: str, pg_pool: asyncpg.Pool) -> None:
    admin_key = api_keys.generate_key()
    prefix = api_keys.parse_key(admin_key).prefix  # type: ignore[union-attr]
    settings = _settings(postgres_url, redis_url, nats_url, 20000 + uuid.uuid4().int % 10000, admin_key,
                         key_usage_flush_s=3600)
    async with _instance(settings) as gateway:
        for _ in range(20):
            assert (await gateway.get("/api/v1/auth/me", headers={"X-API-Key": admin_key})).status_code == 200
        # an hour between flushes: twenty requests wrote nothing yet
        assert await pg_pool.fetchval("SELECT last_used_at FROM auth.api_keys WHERE prefix = $1", prefix) is None
    # the gateway's stop flushed what it noted
    used = await pg_pool.fetchval("SELECT last_used_at FROM auth.api_keys WHERE prefix = $1", prefix)
    assert used is not None and abs(used.timestamp() - time.time()) < 60


async def test_a_flush_never_moves_last_used_at_backwards(pg_pool: asyncpg.Pool) -> None:
    await apply_migrations(pg_pool, "auth", load_migrations(files("sutazai_gateway") / "migrations"))
    store = AuthStore(pg_pool)
    user = await store.create_user(f"u_{uuid.uuid4().hex[:10]}", "x", email=None, is_admin=False)
    key = api_keys.generate_key()
    prefix = api_keys.parse_key(key).prefix  # type: ignore[union-attr]
    await store.create_api_key(user.id, "k", prefix, api_keys.hash_key(key))
    usage = KeyUsage(store, every_s=3600)
    usage.touch(prefix, 2_000_000_000.0)
    usage.touch("00000000", 2_000_000_000.0)  # a key that is gone meanwhile: ignored
    await usage.flush()
    usage.touch(prefix, 1_900_000_000.0)  # an older note (another process flushing late)
    await usage.flush()
    row = await store.api_key_by_prefix(prefix)
    assert row is not None and row.last_used_at is not None and row.last_used_at.timestamp() == 2_000_000_000.0
    await usage.flush()  # nothing noted: no statement, no error
