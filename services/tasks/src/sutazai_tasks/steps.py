"""The committed steps of agent runs (table ``tasks.agent_steps``) and the approval state of their tasks.

A step is written only while its task is ``running`` and its sequence number is free, in one statement:
a worker that lost the task (cancelled, or taken over after its lease ran out) cannot add to the run.

Steps are committed asynchronously by default (``synchronous_commit = off`` for that statement alone): the
step is committed and visible to every other worker at once, so a killed *worker* loses nothing, but the
statement does not wait for PostgreSQL's WAL flush (~1-20 ms of an fsync here, most of a tool step's own
time). A PostgreSQL crash can lose the last fraction of a second of steps; the run then repeats what they
recorded (as for a call interrupted before its result was committed). ``flush=True`` waits for the flush."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from sutazai_tasks.errors import TaskNotFoundError, TaskStateError
from sutazai_tasks.model import TaskRow
from sutazai_tasks.store import _COLUMNS, _row

StepKind = Literal["model", "tool_call", "tool_result", "approval"]


@dataclass(frozen=True, slots=True)
class Step:
    seq: int
    kind: StepKind
    data: dict[str, Any]


_INSERT = (
    "INSERT INTO tasks.agent_steps (task_id, seq, kind, data, attempt)"
    " SELECT $1, $2, $3, $4, $5{source} WHERE EXISTS"
    "  (SELECT 1 FROM tasks.tasks WHERE id = $1 AND status = 'running')"
    " ON CONFLICT (task_id, seq) DO NOTHING"
)
# set_config(..., true) lasts until the end of the statement's own transaction: this commit only.
_ASYNC_COMMIT = " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"


class StepStore:
    def __init__(self, pool: asyncpg.Pool, *, flush: bool = False) -> None:
        self._pool = pool
        self._insert = _INSERT.format(source="" if flush else _ASYNC_COMMIT)

    async def steps(self, task_id: str) -> list[Step]:
        records = await self._pool.fetch(
            "SELECT seq, kind, data FROM tasks.agent_steps WHERE task_id = $1 ORDER BY seq", uuid.UUID(task_id))
        return [Step(r["seq"], r["kind"], json.loads(r["data"])) for r in records]  # jsonb comes as text

    async def commit(self, task_id: str, seq: int, kind: StepKind, data: dict[str, Any], attempt: int) -> bool:
        """Record step ``seq``; False when the task is no longer running or the step exists already."""
        status = await self._pool.execute(self._insert, uuid.UUID(task_id), seq, kind, json.dumps(data), attempt)
        return bool(status.endswith(" 1"))

    async def park(self, task_id: str, pending: dict[str, Any]) -> bool:
        """running -> waiting_approval, showing ``pending`` (the tool call) until someone decides."""
        status = await self._pool.execute(
            "UPDATE tasks.tasks SET status = 'waiting_approval', pending_approval = $2, updated_at = now()"
            " WHERE id = $1 AND status = 'running'",
            uuid.UUID(task_id), json.dumps(pending),
        )
        return bool(status.endswith(" 1"))

    async def decide(self, task_id: str, owner_id: str | None, approve: bool, reason: str) -> TaskRow:
        """Record the decision as a step and queue the run again (fresh attempts). ``owner_id`` None: an admin."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(
                "SELECT status, pending_approval FROM tasks.tasks WHERE id = $1"
                " AND ($2::text IS NULL OR owner_id = $2) FOR UPDATE",
                uuid.UUID(task_id), owner_id,
            )
            if record is None:
                raise TaskNotFoundError(f"task {task_id} not found")
            if record["status"] != "waiting_approval":
                raise TaskStateError(f"task {task_id} is {record['status']}, not waiting for an approval")
            seq = await conn.fetchval(
                "SELECT coalesce(max(seq), -1) + 1 FROM tasks.agent_steps WHERE task_id = $1", uuid.UUID(task_id))
            pending = json.loads(record["pending_approval"]) if record["pending_approval"] else {}
            await conn.execute(
                "INSERT INTO tasks.agent_steps (task_id, seq, kind, data, attempt) VALUES ($1, $2, 'approval', $3, 0)",
                uuid.UUID(task_id), seq,
                json.dumps({"call_id": pending.get("call_id"), "approved": approve, "reason": reason[:2000],
                            "decided_by": owner_id or "admin"}),
            )
            updated = await conn.fetchrow(
                f"UPDATE tasks.tasks SET status = 'queued', pending_approval = NULL, attempts = 0, updated_at = now()"
                f" WHERE id = $1 RETURNING {_COLUMNS}",
                uuid.UUID(task_id),
            )
            assert updated is not None
            return _row(updated)
