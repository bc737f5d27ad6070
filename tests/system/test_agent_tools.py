"""Agents that act: an agent whose ``tools`` name a tool of a stdio MCP server (``mcp_servers/counter.py``,
official SDK, counting its calls in a file) runs model -> tool -> model through the task workers, durably.

The local 135M model is weak: the first call is forced (``payload.tool_choice``), a grammar makes its
arguments valid, and ``max_steps`` bounds the rest."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system
SERVER = Path(__file__).with_name("mcp_servers") / "counter.py"


@pytest.fixture(scope="module")
def count_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-counts") / "count.txt"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, count_file: Path, stack_servers: Servers) -> Iterator[RunningStack]:
    home = tmp_path_factory.mktemp("agent-tools")
    config = home / "mcp.yaml"
    config.write_text(json.dumps({"servers": {"counter": {
        "command": sys.executable, "args": [str(SERVER), str(count_file)], "requires_approval": ["danger"],
        "timeout_s": 20}}}))
    with run_stack(home / "stack", stack_servers, timeout_s=600, SUTAZAI_TASKS_MCP_SERVERS_FILE=str(config),
                   SUTAZAI_CHAT_REQUEST_TIMEOUT_S="600", SUTAZAI_START_TIMEOUT_S="300") as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=60) as client:
        assert wait_until(lambda: any(s["healthy"] for s in client.get("/api/v1/mcp/servers").json()["servers"]), 60)
        for agent_id, tools in (("counter-agent", ["counter/count"]), ("careful-agent", ["counter/danger"])):
            created = client.post("/api/v1/agents", json={
                "id": agent_id, "name": agent_id, "description": "Counts things with a tool.",
                "tools": tools, "max_steps": 2, "max_tokens": 24, "temperature": 0,
                "system_prompt": "You count things. Use the tool, then say what it returned."})
            assert created.status_code in (200, 201), created.text
        yield client


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _events(client: httpx.Client, task_id: str, until: tuple[str, ...] = ("completed", "failed", "dead"),
            on_event=None) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def, type-arg]
    events: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events", timeout=600) as response:
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                if on_event is not None:
                    on_event(kind, events[-1][1])
                if kind in until or (kind == "state" and events[-1][1]["status"] in until):
                    break
    return events


def _submit(client: httpx.Client, agent_id: str, text: str, tool: str) -> str:
    created = client.post("/api/v1/tasks", json={"task_type": "agent", "agent_id": agent_id, "priority": 10,
                                                 "payload": {"input": text, "tool_choice": tool}})
    assert created.status_code == 202, created.text
    return str(created.json()["task_id"])


def test_mcp_servers_are_listed_with_their_tools_and_health(admin: httpx.Client) -> None:
    listed = admin.get("/api/v1/mcp/servers").json()["servers"]
    counter = next(s for s in listed if s["name"] == "counter")
    assert counter["healthy"] and counter["transport"] == "stdio"
    tools = {t["name"]: t for t in counter["tools"]}
    assert set(tools) >= {"count", "danger"} and tools["danger"]["requires_approval"]
    assert tools["count"]["input_schema"]["properties"]["label"]["type"] == "string"


def test_execute_runs_one_tool_for_an_admin_and_refuses_bad_input(admin: httpx.Client, count_file: Path) -> None:
    before = len(_lines(count_file))
    ran = admin.post("/api/v1/mcp/execute", json={"server": "counter", "tool": "count", "arguments": {"label": "x"}})
    assert ran.status_code == 200, ran.text
    assert ran.json()["success"] and ran.json()["content"] == f"counted {before + 1}"
    missing = admin.post("/api/v1/mcp/execute", json={"server": "nope", "tool": "count"})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    unknown = admin.post("/api/v1/mcp/execute", json={"server": "counter", "tool": "nope"})
    assert unknown.status_code == 404
    admin.post("/api/v1/mcp/execute", json={"server": "counter", "tool": "count", "arguments": {"label": 5}})
    assert len(_lines(count_file)) >= before + 1


@pytest.mark.timeout(900)
def test_an_agent_completes_through_a_tool_call_that_survives_a_killed_worker(
    stack: RunningStack, admin: httpx.Client, count_file: Path
) -> None:
    before = len(_lines(count_file))
    task_id = _submit(admin, "counter-agent", "Count the apples.", "counter/count")
    killed: list[int] = []
    workers = {stack.pid(name): name for name in stack.state["services"] if name.startswith("tasks-worker")}
    assert len(workers) >= 2

    def kill_after_the_first_tool_result(kind: str, data: dict) -> None:  # type: ignore[type-arg]
        if kind == "tool_result" and not killed and data.get("worker") in workers:
            killed.append(int(data["worker"]))
            os.kill(int(data["worker"]), signal.SIGKILL)  # between two steps: the result is committed

    events = _events(admin, task_id, on_event=kill_after_the_first_tool_result)
    task = admin.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed", task
    kinds = [k for k, _ in events]
    assert "tool_call" in kinds and "tool_result" in kinds
    assert kinds.index("tool_call") < kinds.index("tool_result")
    assert killed, "the run never reached a tool result"
    steps = task["result"]["steps"]
    results = [s for s in steps if s["kind"] == "tool_result" and s["tool"] == "counter/count"]
    assert results and not results[0]["is_error"], steps
    # Exactly once: the server counted as many calls as the run committed results, none after the kill again.
    assert len(_lines(count_file)) - before == len(results)
    assert len({s["call_id"] for s in results}) == len(results)
    finished_by = {d.get("worker") for k, d in events if k in ("tool_call", "tool_result")}
    assert task["result"]["output"] is not None and finished_by


@pytest.mark.timeout(900)  # two model steps on a shared 2-core machine
def test_a_tool_requiring_approval_waits_and_a_rejection_reaches_the_model(
    stack: RunningStack, admin: httpx.Client, count_file: Path
) -> None:
    danger = Path(str(count_file) + ".danger")
    task_id = _submit(admin, "careful-agent", "Delete the old files.", "counter/danger")
    assert wait_until(lambda: admin.get(f"/api/v1/tasks/{task_id}").json()["status"] == "waiting_approval", 300, 1)
    parked = admin.get(f"/api/v1/tasks/{task_id}").json()
    assert parked["pending_approval"]["tool"] == "counter/danger" and not danger.exists()
    # Another user cannot decide (the task is not theirs: 404), and nothing runs.
    name = f"other-{time.time_ns()}"
    assert admin.post("/api/v1/auth/users", json={"username": name, "password": "a-long-password"}).status_code == 201
    token = httpx.post(stack.url + "/api/v1/auth/login", json={"username": name, "password": "a-long-password"},
                       timeout=30).json()["access_token"]
    refused = httpx.post(stack.url + f"/api/v1/tasks/{task_id}/approve", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    assert refused.status_code == 404, refused.text
    assert admin.get(f"/api/v1/tasks/{task_id}").json()["status"] == "waiting_approval"
    rejected = admin.post(f"/api/v1/tasks/{task_id}/reject", json={"reason": "not today"})
    assert rejected.status_code == 200, rejected.text
    again = admin.post(f"/api/v1/tasks/{task_id}/reject", json={"reason": "twice"})
    assert again.status_code == 409
    assert wait_until(lambda: admin.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed", 300, 1)
    task = admin.get(f"/api/v1/tasks/{task_id}").json()
    result = next(s for s in task["result"]["steps"] if s["kind"] == "tool_result")
    assert "rejected by a person: not today" in result["content"] and not danger.exists()


async def test_the_official_mcp_client_lists_and_calls_the_platforms_tools(stack: RunningStack,
                                                                           admin: httpx.Client) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    key = stack.secrets["admin_api_key"]
    async with httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=60) as http, \
            Client(streamable_http_client(stack.url + "/mcp", http_client=http)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names >= {"list_agents", "submit_task", "get_task"}
        listed = await client.call_tool("list_agents", {"query": "count"})
        assert not listed.is_error and "counter-agent" in "".join(getattr(c, "text", "") for c in listed.content)
        submitted = await client.call_tool("submit_task", {"agent_id": "summarizer", "input": "One. Two."})
        assert not submitted.is_error, submitted
        task_id = submitted.structured_content["task_id"]
        read = await client.call_tool("get_task", {"task_id": task_id})
        assert not read.is_error and read.structured_content["task_id"] == task_id


async def test_the_official_mcp_client_stores_and_searches_memories_in_the_callers_scope(
        stack: RunningStack, admin: httpx.Client) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    fact = f"The boat is called Vega-{time.time_ns()}."
    async with httpx2.AsyncClient(headers=stack.admin_headers, timeout=60) as http, \
            Client(streamable_http_client(stack.url + "/mcp", http_client=http)) as client:
        assert {"search_memory", "store_memory"} <= {t.name for t in (await client.list_tools()).tools}
        stored = await client.call_tool("store_memory", {"content": fact, "agent_id": "mcp-notes"})
        assert not stored.is_error, stored
        memory_id = stored.structured_content["id"]
        assert stored.structured_content["event"] == "created"
        found = await client.call_tool("search_memory", {"query": "What is the boat called?", "agent_id": "mcp-notes"})
        assert not found.is_error and memory_id in "".join(getattr(c, "text", "") for c in found.content)
        refused = await client.call_tool("search_memory", {"query": "boat", "limit": 0})
        assert refused.is_error
        saved = (await http.get(stack.url + f"/api/v1/memory/{memory_id}")).json()
    assert saved["content"] == fact and saved["agent_id"] == "mcp-notes"


@pytest.mark.timeout(900)  # two model steps on a shared 2-core machine
def test_an_agent_stores_a_memory_with_its_tool_in_its_owners_and_its_own_scope(
        stack: RunningStack, admin: httpx.Client) -> None:
    created = admin.post("/api/v1/agents", json={
        "id": "memo-agent", "name": "memo-agent", "description": "Remembers what it is told.",
        "tools": ["store_memory", "search_memory"], "max_steps": 2, "max_tokens": 40, "temperature": 0,
        "system_prompt": "You remember facts. Store the fact you are told with store_memory, then confirm."})
    assert created.status_code in (200, 201), created.text
    task_id = _submit(admin, "memo-agent", "Remember this: the spare key is under the blue pot.", "store_memory")
    events = _events(admin, task_id)
    task = admin.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed", task
    assert [k for k, _ in events if k in ("tool_call", "tool_result")][:2] == ["tool_call", "tool_result"]
    result = next(s for s in task["result"]["steps"] if s["kind"] == "tool_result")
    assert result["tool"] == "store_memory" and not result["is_error"], result
    stored = json.loads(result["content"])
    saved = admin.get(f"/api/v1/memory/{stored['id']}")
    assert saved.status_code == 200 and saved.json()["agent_id"] == "memo-agent", saved.text
    # Stored for the task's owner: another user does not see it.
    name = f"memo-other-{time.time_ns()}"
    assert admin.post("/api/v1/auth/users", json={"username": name, "password": "a-long-password"}).status_code == 201
    token = httpx.post(stack.url + "/api/v1/auth/login", json={"username": name, "password": "a-long-password"},
                       timeout=30).json()["access_token"]
    hidden = httpx.get(stack.url + f"/api/v1/memory/{stored['id']}", headers={"Authorization": f"Bearer {token}"},
                       timeout=30)
    assert hidden.status_code == 404, hidden.text


def test_the_mcp_endpoint_needs_the_gateways_credentials(stack: RunningStack) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        refused = httpx.post(stack.url + "/mcp", json={}, headers=headers, timeout=10)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"


@pytest.mark.timeout(900)
def test_an_agent_with_memory_and_tools_recalls_memories_on_the_tool_loop(admin: httpx.Client) -> None:
    """``memory: true`` with tools: the tool loop's system prompt carries the recalled memories and the
    result names them (``memories_used``), as on the one-call path (issue #9)."""
    created = admin.post("/api/v1/agents", json={
        "id": "recall-agent", "name": "recall-agent", "description": "Counts and remembers.",
        "tools": ["counter/count"], "memory": True, "max_steps": 2, "max_tokens": 24, "temperature": 0,
        "system_prompt": "You count things. Use the tool, then answer."})
    assert created.status_code in (200, 201), created.text
    stored = admin.post("/api/v1/memory", json={"content": "The apples are kept in crate C-17.",
                                                "agent_id": "recall-agent"})
    assert stored.status_code == 201, stored.text
    memory_id = stored.json()["results"][0]["id"]
    task_id = _submit(admin, "recall-agent", "Count the apples in crate C-17.", "counter/count")
    _events(admin, task_id)
    task = admin.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed", task
    assert any(s["kind"] == "tool_result" for s in task["result"]["steps"])  # it ran the tool loop
    assert memory_id in task["result"]["memories_used"]
