"""Steps of an agent run on the real PostgreSQL, NATS and a real stdio MCP server (``tests/system/mcp_servers/
counter.py``, through ``McpHub`` and ``McpService`` over gRPC, as workers call it): a step is recorded only
while its task runs and once per sequence number, asynchronous commit stays within its own statement, and a
tool call found started without a result when a run resumes is not run again unless the tool is repeatable."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from sutazai.tasks.v1 import tasks_pb2_grpc
from sutazai_runtime.identity import IdentityInterceptor, IdentitySettings
from sutazai_runtime.identity.testing import metadata as signed_metadata
from sutazai_tasks.agent_run import AgentRun
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.mcp_client import McpConfig, McpHub, ServerConfig
from sutazai_tasks.mcp_service import McpServicer
from sutazai_tasks.model import NewTask, TaskRow
from sutazai_tasks.steps import Step, StepStore
from sutazai_tasks.store import TaskStore
from sutazai_tasks.tools import Toolbox, ToolSpec

COUNTER = Path(__file__).resolve().parents[3] / "tests" / "system" / "mcp_servers" / "counter.py"
COUNT = ToolSpec("counter/count", "Count one call.", {"type": "object", "properties": {"label": {"type": "string"}}})


async def _running_task(store: TaskStore, pool: asyncpg.Pool) -> TaskRow:
    task, _ = await store.create(NewTask(owner_id="u1", task_type="agent", agent_id="a",
                                         payload_json=json.dumps({"input": "count"})))
    await pool.execute("UPDATE tasks.tasks SET status = 'running', attempts = 1 WHERE id = $1", uuid.UUID(task.id))
    running = await store.get(task.id)
    assert running is not None
    return running


@pytest.mark.parametrize("flush", [False, True])
async def test_a_step_is_recorded_once_and_only_while_its_task_runs(store: TaskStore, task_pool: asyncpg.Pool,
                                                                    flush: bool) -> None:
    steps = StepStore(task_pool, flush=flush)
    task = await _running_task(store, task_pool)
    assert await steps.commit(task.id, 0, "model", {"content": "hi", "tool_calls": []}, 1)
    assert not await steps.commit(task.id, 0, "model", {"content": "again"}, 1)  # the seq is taken
    await task_pool.execute("UPDATE tasks.tasks SET status = 'cancelled' WHERE id = $1", uuid.UUID(task.id))
    assert not await steps.commit(task.id, 1, "tool_result", {"call_id": "c"}, 1)
    assert [(s.seq, s.kind, s.data["content"]) for s in await steps.steps(task.id)] == [(0, "model", "hi")]


async def test_asynchronous_commit_ends_with_its_statement(store: TaskStore, postgres_url: str,
                                                           task_pool: asyncpg.Pool) -> None:
    task = await _running_task(store, task_pool)
    connection = await asyncpg.connect(postgres_url)
    try:
        one = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
        assert one is not None
        async with one:
            assert await StepStore(one).commit(task.id, 0, "model", {"content": "x"}, 1)
            # the same (only) connection afterwards: back to the server's setting
            assert await one.fetchval("SHOW synchronous_commit") == await connection.fetchval("SHOW synchronous_commit")
        assert await connection.fetchval("SELECT count(*) FROM tasks.agent_steps WHERE task_id = $1",
                                         uuid.UUID(task.id)) == 1  # visible to another session at once
    finally:
        await connection.close()


@pytest.fixture
async def counter(tmp_path: Path) -> AsyncIterator[tuple[grpc.aio.Channel, Path]]:
    count_file = tmp_path / "count.txt"
    hub = McpHub(McpConfig(servers={"counter": ServerConfig(command=sys.executable,
                                                            args=(str(COUNTER), str(count_file)))}))
    server = grpc.aio.server(interceptors=[IdentityInterceptor(IdentitySettings().verifier())])
    hub.start()
    try:
        await hub.wait_ready(60)
        tasks_pb2_grpc.add_McpServiceServicer_to_server(McpServicer(hub), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, count_file
    finally:
        await server.stop(None)
        await hub.close()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _run_with_call(task: TaskRow, steps: StepStore, history: list[Step]) -> dict[str, Any]:
    call = {"id": "call_0_0", "name": COUNT.model_name, "arguments": json.dumps({"label": "apples"})}
    data = {"content": "", "tool_calls": [call], "model": "m"}
    assert await steps.commit(task.id, 0, "model", data, 1)
    history.append(Step(0, "model", data))
    return call


async def test_a_tool_call_is_recorded_as_started_before_its_result(
        store: TaskStore, task_pool: asyncpg.Pool, bus: TaskBus, counter: tuple[grpc.aio.Channel, Path]) -> None:
    channel, count_file = counter
    steps = StepStore(task_pool)
    run = AgentRun(channel, steps, Toolbox(channel, channel, store, bus), bus, default_max_steps=2, tool_timeout_s=20)
    task = await _running_task(store, task_pool)
    history: list[Step] = []
    call = await _run_with_call(task, steps, history)
    result = await run._run_tool(task, call, COUNT, history, (lambda: signed_metadata("u1", issuer="tasks-worker")))
    assert not result.data["is_error"] and result.data["content"] == "counted 1"
    assert _lines(count_file) == 1
    recorded = await steps.steps(task.id)
    assert [(s.seq, s.kind, s.data.get("call_id")) for s in recorded] == [
        (0, "model", None), (1, "tool_call", "call_0_0"), (2, "tool_result", "call_0_0")]


@pytest.mark.parametrize("repeatable", [False, True])
async def test_a_call_started_without_a_result_is_not_run_again_unless_repeatable(
        store: TaskStore, task_pool: asyncpg.Pool, bus: TaskBus, counter: tuple[grpc.aio.Channel, Path],
        repeatable: bool) -> None:
    channel, count_file = counter
    steps = StepStore(task_pool)
    run = AgentRun(channel, steps, Toolbox(channel, channel, store, bus), bus, default_max_steps=2, tool_timeout_s=20)
    task = await _running_task(store, task_pool)
    history: list[Step] = []
    call = await _run_with_call(task, steps, history)
    # A worker recorded the start and died while the tool ran (its result never committed).
    started = {"call_id": call["id"], "tool": COUNT.name}
    assert await steps.commit(task.id, 1, "tool_call", started, 1)
    history.append(Step(1, "tool_call", started))
    spec = ToolSpec(COUNT.name, COUNT.description, COUNT.parameters, repeatable=repeatable)
    result = await run._run_tool(task, call, spec, history, (lambda: signed_metadata("u1", issuer="tasks-worker")))
    if repeatable:
        assert _lines(count_file) == 1 and not result.data["is_error"]
        assert [s.kind for s in await steps.steps(task.id)] == ["model", "tool_call", "tool_call", "tool_result"]
    else:
        assert _lines(count_file) == 0, "the interrupted call ran a second time"
        assert result.data["is_error"] and "may or may not have taken effect" in result.data["content"]
        assert [s.kind for s in await steps.steps(task.id)] == ["model", "tool_call", "tool_result"]
