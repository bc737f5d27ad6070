"""Who may call what, for every route the gateway's OpenAPI document lists (new routes are covered as they land).

- anonymous: every route outside ``PUBLIC`` answers 401 with a problem body, so a route that forgets its
  credential dependency fails here;
- a plain user: every route that declares 403 for the admin role (``complete_problem_declarations`` adds it
  from the route's ``AdminUser`` dependency) answers 403;
- another user's data: every route with a task, memory, document, entity or relation id in its path, called by
  user B with user A's real ids, answers 404 (never 403, which would confirm the id exists), and A's data is
  unchanged afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system

# Routes that answer without a credential: root, health, status, docs, the login and refresh exchanges.
PUBLIC = {
    ("GET", "/"), ("GET", "/health"), ("GET", "/health-emergency"), ("GET", "/api/v1/health/detailed"),
    ("GET", "/api/v1/status"), ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh"),
}
# Routes that declare 403 for a condition other than the admin role: /mcp/execute refuses a plain user only
# for a server not marked shared, which depends on the MCP configuration (this stack configures none).
CONDITIONAL_403 = {("POST", "/api/v1/mcp/execute")}
# Path parameters that name a user's own data, and the kind of object each one names.
OWNED = {"task_id": "task", "memory_id": "memory", "document_id": "document", "entity_id": "entity",
         "relation_id": "relation"}
# Bodies that pass validation, so that a 404 is about the id and not a 422 about the body.
BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/api/v1/memory/{memory_id}"): {"content": "changed by someone else"},
    ("POST", "/api/v1/tasks/{task_id}/reject"): {"reason": "not mine"},
}


def _operations(stack: RunningStack) -> list[tuple[str, str, dict[str, Any]]]:
    paths = httpx.get(stack.url + "/openapi.json", timeout=10).json()["paths"]
    return [(method.upper(), path, op) for path, ops in paths.items() for method, op in ops.items()
            if method in ("get", "post", "put", "patch", "delete")]


def _fill(path: str, value: str = "00000000-0000-0000-0000-000000000000") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("route-access"), stack_servers) as running:
        yield running


def _new_user(stack: RunningStack) -> dict[str, str]:
    name = "u-" + uuid.uuid4().hex[:10]
    created = httpx.post(stack.url + "/api/v1/auth/users", headers=stack.admin_headers, timeout=10,
                         json={"username": name, "password": "a-long-password"})
    assert created.status_code == 201, created.text
    key = httpx.post(stack.url + "/api/v1/auth/login", timeout=10,
                     json={"username": name, "password": "a-long-password"}).json()["access_token"]
    return {"Authorization": f"Bearer {key}"}


def test_every_route_but_the_public_ones_refuses_an_anonymous_caller(stack: RunningStack) -> None:
    operations = _operations(stack)
    assert len(operations) > 60
    listed = {(method, path) for method, path, _ in operations}
    assert PUBLIC <= listed, PUBLIC - listed  # the public list names real routes
    wrong = {}
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for method, path, _ in operations:
            if (method, path) in PUBLIC:
                continue
            response = client.request(method, _fill(path), json={} if method in ("POST", "PUT", "PATCH") else None)
            if response.status_code != 401 or response.headers["content-type"] != "application/problem+json":
                wrong[f"{method} {path}"] = response.status_code
    assert wrong == {}


def test_a_plain_user_is_refused_every_admin_route(stack: RunningStack) -> None:
    user = _new_user(stack)
    admin_routes = [(m, p) for m, p, op in _operations(stack)
                    if "403" in op.get("responses", {}) and (m, p) not in CONDITIONAL_403]
    assert ("POST", "/api/v1/auth/users") in admin_routes and ("POST", "/api/v1/agents") in admin_routes
    wrong = {}
    with httpx.Client(base_url=stack.url, headers=user, timeout=10) as client:
        for method, path in admin_routes:
            response = client.request(method, _fill(path, "x"), json={} if method in ("POST", "PUT") else None)
            if response.status_code != 403:
                wrong[f"{method} {path}"] = (response.status_code, response.text[:200])
    assert wrong == {}


def _owned_data(stack: RunningStack, owner: dict[str, str]) -> dict[str, str]:
    """One object of each owned kind, created by ``owner``: their ids by kind."""
    with httpx.Client(base_url=stack.url, headers=owner, timeout=60) as client:
        task = client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {"n": 1}})
        assert task.status_code == 202, task.text
        memory = client.post("/api/v1/memory", json={"content": "The owner's locker code is 4711."})
        assert memory.status_code in (200, 201), memory.text
        memory_json = memory.json()
        memory_id = memory_json["id"] if "id" in memory_json else memory_json["results"][0]["id"]
        document = client.post("/api/v1/documents", json={"filename": "notes.md", "content": "# Notes\n\nPrivate."})
        assert document.status_code in (200, 201, 202), document.text
        ids = {"task": task.json()["task_id"], "memory": memory_id, "document": document.json()["id"]}
        for name in ("Alice", "Bob"):
            entity = client.post("/api/v1/graph/entities", json={"name": name, "type": "person"})
            assert entity.status_code in (200, 201), entity.text
            ids["entity" if name == "Alice" else "entity2"] = entity.json()["id"]
        relation = client.post("/api/v1/graph/relations",
                               json={"source": ids["entity"], "target": ids["entity2"], "type": "knows"})
        assert relation.status_code in (200, 201), relation.text
        ids["relation"] = relation.json()["id"]
        assert wait_until(lambda: client.get(f"/api/v1/tasks/{ids['task']}").json()["status"] == "completed", 30)
    return ids


def test_another_users_data_is_not_found_on_every_route_that_names_it(stack: RunningStack) -> None:
    owner, other = _new_user(stack), _new_user(stack)
    ids = _owned_data(stack, owner)
    checked, wrong = [], {}
    with httpx.Client(base_url=stack.url, headers=other, timeout=30) as client:
        for method, path, op in _operations(stack):
            names = re.findall(r"\{([^}]+)\}", path)
            if not names or not all(n in OWNED for n in names) or "403" in op.get("responses", {}):
                continue  # admin-only routes refuse a plain user before looking (previous test)
            url = path
            for name in names:
                url = url.replace("{" + name + "}", ids[OWNED[name]])
            body = BODIES.get((method, path), {} if method in ("POST", "PUT", "PATCH") else None)
            response = client.request(method, url, json=body)
            checked.append(f"{method} {path}")
            if response.status_code != 404:
                wrong[f"{method} {path}"] = (response.status_code, response.text[:200])
        path_query = client.get("/api/v1/graph/path", params={"from": ids["entity"], "to": ids["entity2"]})
        if path_query.status_code != 404:
            wrong["GET /api/v1/graph/path"] = (path_query.status_code, path_query.text[:200])
        for listing in ("/api/v1/tasks", "/api/v1/memory", "/api/v1/documents", "/api/v1/graph/entities"):
            listed = client.get(listing)
            assert listed.status_code == 200, (listing, listed.text)
            assert not any(value in listed.text for value in ids.values()), listing
    assert wrong == {}
    assert {"GET /api/v1/tasks/{task_id}", "DELETE /api/v1/memory/{memory_id}",
            "DELETE /api/v1/documents/{document_id}", "DELETE /api/v1/graph/entities/{entity_id}",
            "DELETE /api/v1/graph/relations/{relation_id}"} <= set(checked)
    # Nothing the other user tried changed the owner's data.
    with httpx.Client(base_url=stack.url, headers=owner, timeout=30) as client:
        assert client.get(f"/api/v1/tasks/{ids['task']}").json()["status"] == "completed"
        assert client.get(f"/api/v1/memory/{ids['memory']}").json()["content"] == "The owner's locker code is 4711."
        assert client.get(f"/api/v1/documents/{ids['document']}").status_code == 200
        assert client.get(f"/api/v1/graph/entities/{ids['entity']}").status_code == 200
        path = client.get("/api/v1/graph/path", params={"from": ids["entity"], "to": ids["entity2"]})
        assert path.status_code == 200, path.text
