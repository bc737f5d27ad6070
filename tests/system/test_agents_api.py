"""The agent registry over REST against the running stack: list/filter/search/paging in the original's
list shape, detail, admin writes, read-only file agents, problems for bad input, and hot reload."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"
ITEM_FIELDS = {"id", "name", "status", "capabilities", "description", "model", "source"}


@pytest.fixture(scope="module")
def agents_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("agents-folder")
    for path in REPO_AGENTS.glob("*.md"):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, agents_dir: Path, stack_servers: Servers
) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("agents"), stack_servers, SUTAZAI_AGENTS_DIR=str(agents_dir)) as running:
        yield running


@pytest.fixture
def admin(stack: RunningStack) -> httpx.Client:
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=10) as client:
        yield client  # type: ignore[misc]


def new_agent(agent_id: str, **fields: object) -> dict[str, object]:
    return {"id": agent_id, "name": "Test agent", "description": "made by the system test",
            "system_prompt": "You are a test.", "capabilities": ["systest"], **fields}


def test_the_list_needs_a_credential(stack: RunningStack) -> None:
    response = httpx.get(stack.url + "/api/v1/agents")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_the_list_keeps_the_original_shape_and_pages_in_headers(admin: httpx.Client) -> None:
    shipped = sorted(p.stem for p in REPO_AGENTS.glob("*.md") if p.name != "README.md")

    def listed_active() -> httpx.Response | None:
        # The agents service learns which models its stack's chat serves on its first refresh.
        response = admin.get("/api/v1/agents")
        active = {i["id"] for i in response.json() if i["status"] == "active"}
        return response if set(shipped) <= active else None

    response = wait_until(listed_active, 30)
    assert response, admin.get("/api/v1/agents").json()
    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list)  # the original answered a JSON list
    by_id = {item["id"]: item for item in items}
    assert set(shipped) <= set(by_id)
    for agent_id in shipped:
        assert set(by_id[agent_id]) == ITEM_FIELDS
        assert by_id[agent_id]["source"] == "file" and by_id[agent_id]["model"] == "tinyllama"
        assert by_id[agent_id]["status"] == "active"  # the stack's own chat serves tinyllama
    assert int(response.headers["x-total-count"]) == len(items)

    first = admin.get("/api/v1/agents", params={"limit": 5})
    assert [i["id"] for i in first.json()] == [i["id"] for i in items[:5]]
    assert int(first.headers["x-total-count"]) == len(items)
    assert 'rel="next"' in first.headers["link"] and "offset=5" in first.headers["link"]
    second = admin.get("/api/v1/agents", params={"limit": 5, "offset": 5})
    assert [i["id"] for i in second.json()] == [i["id"] for i in items[5:10]]
    assert 'rel="prev"' in second.headers["link"]


def test_filter_by_capability_and_search_by_text(admin: httpx.Client) -> None:
    sql = admin.get("/api/v1/agents", params={"capability": "sql"}).json()
    assert [i["id"] for i in sql] == ["sql-helper"]
    found = admin.get("/api/v1/agents", params={"q": "translate"}).json()
    assert "translator" in [i["id"] for i in found]
    assert all("translat" in (i["description"] + i["name"]).lower() for i in found)
    assert admin.get("/api/v1/agents", params={"q": "no-such-word-anywhere"}).json() == []


def test_bad_paging_is_422(admin: httpx.Client) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        response = admin.get("/api/v1/agents", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


def test_one_agent_in_detail_or_404(admin: httpx.Client) -> None:
    agent = admin.get("/api/v1/agents/code-reviewer").json()
    assert ITEM_FIELDS <= set(agent)
    assert agent["system_prompt"].startswith("You are a senior software engineer")
    assert agent["tools"] == ["read_file", "search_code"] and agent["temperature"] == 0.1
    missing = admin.get("/api/v1/agents/no-such-agent")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "no-such-agent" in missing.json()["detail"]


def test_admin_creates_replaces_and_deletes_an_agent(admin: httpx.Client) -> None:
    agent_id = f"systest-{uuid.uuid4().hex[:8]}"
    created = admin.post("/api/v1/agents", json=new_agent(agent_id, temperature=0.3, tools=["a"]))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/agents/{agent_id}"
    body = created.json()
    assert body["source"] == "api" and body["model"] == "tinyllama" and body["temperature"] == 0.3
    listed = admin.get("/api/v1/agents", params={"capability": "systest"}).json()
    assert agent_id in [i["id"] for i in listed]

    assert admin.post("/api/v1/agents", json=new_agent(agent_id)).status_code == 409

    replaced = admin.put(f"/api/v1/agents/{agent_id}", json={
        k: v for k, v in new_agent(agent_id, description="replaced", model="no-such-model").items() if k != "id"
    })
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["description"] == "replaced" and replaced.json()["temperature"] is None
    reviewer = admin.get("/api/v1/agents/code-reviewer").json()
    if reviewer["status"] == "active":  # chat answers: a model nobody serves makes the agent unavailable
        assert replaced.json()["status"] == "unavailable"
    else:
        assert replaced.json()["status"] == "unknown"

    assert admin.delete(f"/api/v1/agents/{agent_id}").status_code == 204
    assert admin.get(f"/api/v1/agents/{agent_id}").status_code == 404
    assert admin.delete(f"/api/v1/agents/{agent_id}").status_code == 404


def test_bad_input_is_a_clear_4xx_and_changes_nothing(admin: httpx.Client) -> None:
    agent_id = f"systest-{uuid.uuid4().hex[:8]}"
    invalid = admin.post("/api/v1/agents", json=new_agent(agent_id, temperature=5))
    assert invalid.status_code == 400
    assert "temperature" in invalid.json()["detail"]
    bad_id = admin.post("/api/v1/agents", json=new_agent("Not A Valid Id"))
    assert bad_id.status_code == 400 and "id" in bad_id.json()["detail"]
    unknown_field = admin.post("/api/v1/agents", json=new_agent(agent_id, colour="red"))
    assert unknown_field.status_code == 422
    assert admin.get(f"/api/v1/agents/{agent_id}").status_code == 404
    assert admin.put("/api/v1/agents/ghost-agent", json={
        k: v for k, v in new_agent("x").items() if k != "id"
    }).status_code == 404


def test_file_agents_are_read_only(admin: httpx.Client) -> None:
    assert admin.post("/api/v1/agents", json=new_agent("summarizer")).status_code == 409
    body = {k: v for k, v in new_agent("x").items() if k != "id"}
    put = admin.put("/api/v1/agents/summarizer", json=body)
    assert put.status_code == 409 and "read-only" in put.json()["detail"]
    assert admin.delete("/api/v1/agents/summarizer").status_code == 409
    assert admin.get("/api/v1/agents/summarizer").json()["description"].startswith("Condenses")


def test_writes_need_the_admin_role(stack: RunningStack, admin: httpx.Client) -> None:
    name = "agents-user-" + uuid.uuid4().hex[:6]
    assert admin.post("/api/v1/auth/users", json={"username": name, "password": "a-long-password"}).status_code == 201
    token = httpx.post(stack.url + "/api/v1/auth/login",
                       json={"username": name, "password": "a-long-password"}).json()["access_token"]
    user = {"Authorization": f"Bearer {token}"}
    assert httpx.get(stack.url + "/api/v1/agents", headers=user).status_code == 200
    refused = httpx.post(stack.url + "/api/v1/agents", headers=user, json=new_agent("user-made"))
    assert refused.status_code == 403
    assert httpx.delete(stack.url + "/api/v1/agents/summarizer", headers=user).status_code == 403


def test_a_file_added_edited_and_removed_shows_within_2_s(admin: httpx.Client, agents_dir: Path) -> None:
    path = agents_dir / "hot-reload-check.md"

    def write(description: str) -> None:
        path.write_text(f"---\nname: hot-reload-check\ndescription: {description}\n---\nYou check.\n")

    def seen(predicate, within_s: float = 2.5) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if predicate(admin.get("/api/v1/agents/hot-reload-check")):
                return True
            time.sleep(0.05)
        return False

    write("first version")
    assert seen(lambda r: r.status_code == 200)
    write("second version")
    assert seen(lambda r: r.status_code == 200 and r.json()["description"] == "second version")
    path.unlink()
    assert seen(lambda r: r.status_code == 404)
