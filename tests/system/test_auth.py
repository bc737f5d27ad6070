"""Identity over REST against the running stack: login, tokens, API keys, roles, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("auth"), stack_servers) as running:
        yield running


def test_protected_routes_refuse_missing_and_bad_credentials(stack: RunningStack) -> None:
    missing = httpx.get(stack.url + "/api/v1/auth/me")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"
    for headers in ({"Authorization": "Bearer nonsense"}, {"X-API-Key": "sk-sutazai-00000000-" + "x" * 43}):
        assert httpx.get(stack.url + "/api/v1/auth/me", headers=headers).status_code == 401
    # health and root stay open
    assert httpx.get(stack.url + "/api/v1/health/detailed").status_code == 200


def test_admin_logs_in_with_the_generated_password_and_refreshes(stack: RunningStack) -> None:
    secrets = stack.secrets
    response = httpx.post(stack.url + "/api/v1/auth/login",
                          json={"username": secrets["admin_username"], "password": secrets["admin_password"]})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 1800
    me = httpx.get(stack.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["is_admin"] is True and me.json()["username"] == "admin"
    refreshed = httpx.post(stack.url + "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    assert httpx.post(stack.url + "/api/v1/auth/refresh", json={"refresh_token": "x"}).status_code == 401


def test_bad_login_bodies_are_422_and_wrong_passwords_401(stack: RunningStack) -> None:
    assert httpx.post(stack.url + "/api/v1/auth/login", json={"username": "admin"}).status_code == 422
    assert httpx.post(stack.url + "/api/v1/auth/login", content=b"{oops",
                      headers={"content-type": "application/json"}).status_code == 422
    assert httpx.post(stack.url + "/api/v1/auth/login",
                      json={"username": "nobody-" + uuid.uuid4().hex[:6], "password": "x"}).status_code == 401


def test_users_roles_and_api_keys(stack: RunningStack) -> None:
    name = "dev-" + uuid.uuid4().hex[:8]
    created = httpx.post(stack.url + "/api/v1/auth/users", headers=stack.admin_headers,
                         json={"username": name, "password": "a-long-password"})
    assert created.status_code == 201 and created.json()["is_admin"] is False
    again = httpx.post(stack.url + "/api/v1/auth/users", headers=stack.admin_headers,
                       json={"username": name, "password": "a-long-password"})
    assert again.status_code == 409
    short = httpx.post(stack.url + "/api/v1/auth/users", headers=stack.admin_headers,
                       json={"username": "x" + name, "password": "short"})
    assert short.status_code == 422

    token = httpx.post(stack.url + "/api/v1/auth/login",
                       json={"username": name, "password": "a-long-password"}).json()["access_token"]
    user = {"Authorization": f"Bearer {token}"}
    forbidden = httpx.post(stack.url + "/api/v1/auth/users", headers=user,
                           json={"username": "y" + name, "password": "a-long-password"})
    assert forbidden.status_code == 403

    key = httpx.post(stack.url + "/api/v1/auth/api-keys", headers=user, json={"name": "laptop"}).json()
    assert key["key"].startswith("sk-sutazai-")
    assert httpx.get(stack.url + "/api/v1/auth/me", headers={"X-API-Key": key["key"]}).json()["username"] == name
    listed = httpx.get(stack.url + "/api/v1/auth/api-keys", headers=user).json()
    assert [k["name"] for k in listed] == ["laptop"] and "key" not in listed[0]
    assert httpx.delete(stack.url + f"/api/v1/auth/api-keys/{key['id']}", headers=user).status_code == 204
    assert httpx.get(stack.url + "/api/v1/auth/me", headers={"X-API-Key": key["key"]}).status_code == 401
    assert httpx.delete(stack.url + f"/api/v1/auth/api-keys/{key['id']}", headers=user).status_code == 404
    assert httpx.delete(stack.url + "/api/v1/auth/api-keys/not-a-uuid", headers=user).status_code == 422
