"""Orchestrations run their steps as real child tasks through real NATS and PostgreSQL; the agent
handler here is a plain function standing in for a model (no server is imitated)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.errors import InvalidTaskError, PermanentError
from sutazai_tasks.handlers import echo
from sutazai_tasks.model import NewTask, TaskRow, dump_json
from sutazai_tasks.orchestration import Orchestrator, orchestration_payload
from sutazai_tasks.store import TaskStore


async def _agent(task: TaskRow, progress: Any) -> Any:
    if task.agent_id == "broken":
        raise PermanentError("this agent always fails")
    if task.agent_id == "slow":
        await asyncio.sleep(30)
    return {"output": f"<{task.agent_id}: {task.payload()['input'].splitlines()[-1]}>"}


async def _orchestrate(
    store: TaskStore, bus: TaskBus, agents: list[str], mode: str, owner: str = "orch-test"
) -> TaskRow:
    parent, _ = await store.create(NewTask(
        owner_id=owner, task_type="orchestrate",
        payload_json=dump_json(orchestration_payload("plan a trip", agents, mode)),
        max_attempts=1,
    ))
    await bus.dispatch(parent)
    return parent


def _handlers(store: TaskStore, bus: TaskBus) -> dict[str, Any]:
    return {"echo": echo, "agent": _agent, "orchestrate": Orchestrator(store, bus, poll_s=0.05)}


async def test_a_sequence_passes_each_output_forward(
    store: TaskStore, bus: TaskBus, running_worker: Any, until_final: Any
) -> None:
    parent = await _orchestrate(store, bus, ["researcher", "writer"], "sequential")
    async with running_worker(store, bus, _handlers(store, bus)):
        done = await until_final(store, parent.id, 20)
    assert done.status == "completed", done.error
    steps = done.result()["steps"]
    assert [s["agent_id"] for s in steps] == ["researcher", "writer"]
    assert steps[0]["output"] == "<researcher: plan a trip>"
    assert steps[1]["output"] == "<writer: <researcher: plan a trip>>"  # the first output fed the second
    assert done.result()["output"] == steps[1]["output"]
    children = [await store.get(s["task_id"]) for s in steps]
    assert all(c is not None and c.parent_id == parent.id for c in children)


async def test_parallel_steps_all_run_and_are_aggregated(
    store: TaskStore, bus: TaskBus, running_worker: Any, until_final: Any
) -> None:
    parent = await _orchestrate(store, bus, ["a", "b", "c"], "parallel")
    async with running_worker(store, bus, _handlers(store, bus)):
        done = await until_final(store, parent.id, 20)
    assert done.status == "completed", done.error
    assert {s["output"] for s in done.result()["steps"]} == {"<a: plan a trip>", "<b: plan a trip>", "<c: plan a trip>"}
    assert "## b" in done.result()["output"]


async def test_a_failed_step_fails_the_orchestration(
    store: TaskStore, bus: TaskBus, running_worker: Any, until_final: Any
) -> None:
    parent = await _orchestrate(store, bus, ["researcher", "broken", "writer"], "sequential")
    async with running_worker(store, bus, _handlers(store, bus)):
        done = await until_final(store, parent.id, 20)
    assert done.status == "failed" and "step 2 (broken) ended failed" in (done.error or "")


async def test_cancelling_the_parent_cancels_its_children(
    store: TaskStore, bus: TaskBus, running_worker: Any, until_final: Any
) -> None:
    owner = f"orch-{uuid.uuid4().hex[:8]}"
    parent = await _orchestrate(store, bus, ["slow", "slow"], "parallel", owner)
    async with running_worker(store, bus, _handlers(store, bus)):
        async with asyncio.timeout(10):
            while len((await store.list(owner_id=owner, status="running", limit=100, offset=0))[0]) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        _, before, running_children = await store.cancel(parent.id, owner)
        for task_id in [parent.id, *running_children]:
            await bus.request_cancel(task_id)
        assert before == "running" and len(running_children) == 2
        async with asyncio.timeout(10):  # the running children see the cancel and stop
            while len((await store.list(owner_id=owner, status="cancelled", limit=100, offset=0))[0]) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    children, _ = await store.list(owner_id=owner, status=None, limit=100, offset=0)
    mine = [c for c in children if c.parent_id == parent.id]
    assert len(mine) == 2 and all(c.status == "cancelled" and c.result_json is None for c in mine)


@pytest.mark.parametrize(
    ("goal", "agents", "mode", "field"),
    [("", ["a"], "sequential", "goal"), ("g", [], "sequential", "agents"),
     ("g", ["a"] * 11, "parallel", "agents"), ("g", ["a"], "random", "mode")],
)
def test_bad_orchestrations_are_refused(goal: str, agents: list[str], mode: str, field: str) -> None:
    with pytest.raises(InvalidTaskError, match=f"^{field}:"):
        orchestration_payload(goal, agents, mode)
