"""Orchestrate: run a goal through several agents as child tasks, in sequence (each step gets the
previous step's output) or in parallel, and aggregate their results into the parent's result.

Children are ordinary ``agent`` tasks (same workers, retries, events), created with idempotency keys
derived from the parent, so a parent that is re-run after a crash picks up its existing children
instead of starting them again. Cancelling the parent cancels the children (``store.cancel``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sutazai_tasks.bus import TaskBus
from sutazai_tasks.errors import InvalidTaskError, PermanentError
from sutazai_tasks.handlers import Progress
from sutazai_tasks.model import NewTask, TaskRow, dump_json
from sutazai_tasks.store import TaskStore

MODES = ("sequential", "parallel")
MAX_STEPS = 10


def orchestration_payload(goal: str, agent_ids: list[str], mode: str) -> dict[str, Any]:
    """The parent task's payload, or ``InvalidTaskError`` naming the field."""
    if not goal.strip():
        raise InvalidTaskError("goal: must not be empty")
    if len(goal) > 20_000:
        raise InvalidTaskError("goal: at most 20000 characters")
    if not agent_ids:
        raise InvalidTaskError("agents: name at least one agent (choosing agents by a planner is not available yet)")
    if len(agent_ids) > MAX_STEPS:
        raise InvalidTaskError(f"agents: at most {MAX_STEPS}")
    if mode not in MODES:
        raise InvalidTaskError(f"mode: one of {list(MODES)}")
    return {"goal": goal, "agents": agent_ids, "mode": mode}


def next_input(goal: str, previous_output: str | None) -> str:
    if previous_output is None:
        return goal
    return f"{goal}\n\nThe previous step produced:\n{previous_output}"


class Orchestrator:
    def __init__(self, store: TaskStore, bus: TaskBus, poll_s: float = 0.25) -> None:
        self._store = store
        self._bus = bus
        self._poll_s = poll_s

    async def __call__(self, parent: TaskRow, progress: Progress) -> Any:
        payload = parent.payload()
        goal, agents, mode = payload["goal"], list(payload["agents"]), payload["mode"]
        if mode == "parallel":
            children = [await self._start(parent, i, agent, goal) for i, agent in enumerate(agents)]
            finished = await asyncio.gather(*(self._wait(c) for c in children))
        else:
            finished, output = [], None
            for i, agent in enumerate(agents):
                child = await self._wait(await self._start(parent, i, agent, next_input(goal, output)))
                finished.append(child)
                self._require_success(child, i)
                output = _output(child)
                await progress(f"[step {i + 1}/{len(agents)} {agent} done]\n")
        for i, child in enumerate(finished):
            self._require_success(child, i)
        steps = [{"agent_id": c.agent_id, "task_id": c.id, "status": c.status, "output": _output(c)} for c in finished]
        final = steps[-1]["output"] if mode == "sequential" else "\n\n".join(
            f"## {s['agent_id']}\n{s['output']}" for s in steps
        )
        return {"goal": goal, "mode": mode, "steps": steps, "output": final}

    async def _start(self, parent: TaskRow, index: int, agent_id: str, text: str) -> TaskRow:
        child, _ = await self._store.create(NewTask(
            owner_id=parent.owner_id, task_type="agent", payload_json=dump_json({"input": text}),
            priority=parent.priority,
            agent_id=agent_id, idempotency_key=f"orchestrate:{parent.id}:{parent.replays}:{index}",
            timeout_s=parent.timeout_s, max_attempts=3, parent_id=parent.id,
        ))
        if child.status == "queued":
            await self._bus.dispatch(child)
        return child

    async def _wait(self, child: TaskRow) -> TaskRow:
        while not child.terminal:
            await asyncio.sleep(self._poll_s)
            current = await self._store.get(child.id)
            assert current is not None
            child = current
        return child

    @staticmethod
    def _require_success(child: TaskRow, index: int) -> None:
        if child.status != "completed":
            raise PermanentError(f"step {index + 1} ({child.agent_id}) ended {child.status}: {child.error or ''}")


def _output(child: TaskRow) -> str:
    result = child.result()
    if isinstance(result, dict):
        return str(result.get("output", ""))
    return "" if result is None else str(result)
