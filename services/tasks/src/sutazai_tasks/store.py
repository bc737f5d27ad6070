"""Tasks in Postgres (schema ``tasks``). Every state change is a guarded UPDATE, so replaying a
message or racing a cancel can never record a second result or resurrect a finished task."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from sutazai_tasks.model import NewTask, TaskRow

_COLUMNS = (
    "id, owner_id, task_type, payload, priority, agent_id, status, attempts, max_attempts, timeout_s,"
    " result, error, idempotency_key, parent_id, created_at, started_at, finished_at, completions, replays,"
    " pending_approval, trace_id, span_id"
)


def pool_setup() -> dict[str, Any]:
    """Keyword arguments for ``create_pool``. None: asyncpg's default passes ``json``/``jsonb`` as text both
    ways, which is what the store wants. Payloads and results stay JSON text from the gRPC bytes to the
    column and back (no decode/encode in between), and ``jsonb`` keeps big ints and 1.0 vs 1 exactly."""
    return {}


def _row(record: asyncpg.Record) -> TaskRow:
    return TaskRow(
        id=str(record["id"]), owner_id=record["owner_id"], task_type=record["task_type"],
        payload_json=record["payload"], priority=record["priority"], agent_id=record["agent_id"],
        status=record["status"], attempts=record["attempts"], max_attempts=record["max_attempts"],
        timeout_s=record["timeout_s"], result_json=record["result"], error=record["error"],
        idempotency_key=record["idempotency_key"],
        parent_id=str(record["parent_id"]) if record["parent_id"] else None,
        created_at=record["created_at"], started_at=record["started_at"], finished_at=record["finished_at"],
        completions=record["completions"], replays=record["replays"], pending_approval=record["pending_approval"],
        trace_id=record["trace_id"], span_id=record["span_id"],
    )


def _uuids(ids: Sequence[str]) -> list[uuid.UUID]:
    return [uuid.UUID(i) for i in ids]


class TaskStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def create(self, task: NewTask) -> tuple[TaskRow, bool]:
        """Insert ``task``; with an idempotency key already used by its owner, return that task instead.
        Returns (row, created)."""
        record = await self._pool.fetchrow(
            f"INSERT INTO tasks.tasks (id, owner_id, task_type, payload, priority, agent_id, status,"
            f" max_attempts, timeout_s, idempotency_key, parent_id, trace_id, span_id)"
            f" VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12)"
            f" ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
            uuid.UUID(task.id), task.owner_id, task.task_type, task.payload_json, task.priority, task.agent_id,
            task.max_attempts, task.timeout_s, task.idempotency_key,
            uuid.UUID(task.parent_id) if task.parent_id else None,
            *(task.trace or (None, None)),
        )
        if record is not None:
            return _row(record), True
        existing = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM tasks.tasks WHERE owner_id = $1 AND idempotency_key = $2",
            task.owner_id, task.idempotency_key,
        )
        assert existing is not None
        return _row(existing), False

    async def create_many(self, tasks: Sequence[NewTask]) -> list[tuple[TaskRow, bool]]:
        """``create`` for many tasks in one statement; results in input order."""
        async with self._pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(
                f"INSERT INTO tasks.tasks (id, owner_id, task_type, payload, priority, agent_id, status,"
                f" max_attempts, timeout_s, idempotency_key, parent_id, trace_id, span_id)"
                f" SELECT id, owner_id, task_type, payload, priority, agent_id, 'queued', max_attempts, timeout_s,"
                f" idempotency_key, parent_id, trace_id, span_id FROM unnest($1::uuid[], $2::text[], $3::text[],"
                f" $4::jsonb[], $5::int[], $6::text[], $7::int[], $8::int[], $9::text[], $10::uuid[], $11::text[],"
                f" $12::text[])"
                f" AS v(id, owner_id, task_type, payload, priority, agent_id, max_attempts, timeout_s,"
                f" idempotency_key, parent_id, trace_id, span_id)"
                f" ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                [uuid.UUID(t.id) for t in tasks], [t.owner_id for t in tasks], [t.task_type for t in tasks],
                [t.payload_json for t in tasks], [t.priority for t in tasks], [t.agent_id for t in tasks],
                [t.max_attempts for t in tasks], [t.timeout_s for t in tasks], [t.idempotency_key for t in tasks],
                [uuid.UUID(t.parent_id) if t.parent_id else None for t in tasks],
                [t.trace[0] if t.trace else None for t in tasks], [t.trace[1] if t.trace else None for t in tasks],
            )
            created = {str(r["id"]): _row(r) for r in records}
            repeats = [t for t in tasks if t.id not in created]
            existing: dict[tuple[str, str | None], TaskRow] = {}
            if repeats:
                rows = await conn.fetch(
                    f"SELECT {_COLUMNS} FROM tasks.tasks WHERE (owner_id, idempotency_key) IN"
                    f" (SELECT * FROM unnest($1::text[], $2::text[]))",
                    [t.owner_id for t in repeats], [t.idempotency_key for t in repeats],
                )
                existing = {(r["owner_id"], r["idempotency_key"]): _row(r) for r in rows}
        return [
            (created[t.id], True) if t.id in created else (existing[(t.owner_id, t.idempotency_key)], False)
            for t in tasks
        ]

    async def get(self, task_id: str, owner_id: str | None = None) -> TaskRow | None:
        """The task; scoped to ``owner_id`` unless it is None (workers, admins)."""
        record = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM tasks.tasks WHERE id = $1 AND ($2::text IS NULL OR owner_id = $2)",
            uuid.UUID(task_id), owner_id,
        )
        return _row(record) if record else None

    async def list(
        self, *, owner_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[TaskRow], int]:
        where = "($1::text IS NULL OR owner_id = $1) AND ($2::text IS NULL OR status = $2)"
        async with self._pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM tasks.tasks WHERE {where}", owner_id, status)
            records = await conn.fetch(
                f"SELECT {_COLUMNS} FROM tasks.tasks WHERE {where} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
                owner_id, status, limit, offset,
            )
        return [_row(r) for r in records], int(total)

    async def claim(self, fresh: Sequence[str], redelivered: Sequence[str]) -> list[TaskRow]:
        """Mark tasks running (one more attempt). A redelivered message may also take over a task left
        ``running`` by a worker that died before acknowledging it."""
        records = await self._pool.fetch(
            f"UPDATE tasks.tasks SET status = 'running', attempts = attempts + 1,"
            f" started_at = coalesce(started_at, now()), updated_at = now()"
            f" WHERE (id = ANY($1::uuid[]) AND status IN ('queued', 'retrying'))"
            f"    OR (id = ANY($2::uuid[]) AND status IN ('queued', 'retrying', 'running'))"
            f" RETURNING {_COLUMNS}",
            _uuids(fresh), _uuids(redelivered),
        )
        return [_row(r) for r in records]

    async def release(self, task_ids: Sequence[str]) -> set[str]:
        """Undo claims without spending their attempts: running -> queued (or retrying, when an earlier
        attempt failed). For work put back because the model was at capacity; returns the ids released."""
        if not task_ids:
            return set()
        records = await self._pool.fetch(
            "UPDATE tasks.tasks SET attempts = greatest(attempts - 1, 0),"
            " status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'queued' END,"
            " started_at = CASE WHEN attempts > 1 THEN started_at END, updated_at = now()"
            " WHERE id = ANY($1::uuid[]) AND status = 'running' RETURNING id",
            _uuids(task_ids),
        )
        return {str(r["id"]) for r in records}

    async def complete(self, results: Sequence[tuple[str, str]]) -> set[str]:
        """Record results (JSON text) of running tasks; returns the ids recorded (a task cancelled meanwhile
        is not)."""
        if not results:
            return set()
        records = await self._pool.fetch(
            "UPDATE tasks.tasks AS t SET status = 'completed', result = v.result, error = NULL,"
            " finished_at = now(), updated_at = now(), completions = t.completions + 1"
            " FROM unnest($1::uuid[], $2::jsonb[]) AS v(id, result)"
            " WHERE t.id = v.id AND t.status = 'running' RETURNING t.id",
            _uuids([r[0] for r in results]), [r[1] for r in results],
        )
        return {str(r["id"]) for r in records}

    async def finish_unsuccessfully(self, task_id: str, status: str, error: str) -> bool:
        """running -> retrying, failed or dead."""
        assert status in ("retrying", "failed", "dead")
        finished = "now()" if status != "retrying" else "NULL"
        result = await self._pool.execute(
            f"UPDATE tasks.tasks SET status = $2, error = $3, finished_at = {finished}, updated_at = now()"
            f" WHERE id = $1 AND status = 'running'",
            uuid.UUID(task_id), status, error[:4000],
        )
        return bool(result.endswith(" 1"))

    async def cancel(self, task_id: str, owner_id: str | None) -> tuple[TaskRow | None, str | None, list[str]]:
        """Cancel a task that has not finished, and its unfinished children.
        Returns (row after, status before, ids of children that were running)."""
        async with self._pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(
                "SELECT status FROM tasks.tasks WHERE id = $1 AND ($2::text IS NULL OR owner_id = $2) FOR UPDATE",
                uuid.UUID(task_id), owner_id,
            )
            if before is None:
                return None, None, []
            record = await conn.fetchrow(
                f"UPDATE tasks.tasks SET status = 'cancelled', finished_at = now(), updated_at = now()"
                f" WHERE id = $1 AND status IN ('queued', 'running', 'retrying', 'waiting_approval')"
                f" RETURNING {_COLUMNS}",
                uuid.UUID(task_id),
            )
            if record is None:
                current = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tasks.tasks WHERE id = $1", uuid.UUID(task_id))
                return (_row(current) if current else None), before, []
            children = await conn.fetch(
                "UPDATE tasks.tasks AS t SET status = 'cancelled', finished_at = now(), updated_at = now()"
                " FROM (SELECT id, status FROM tasks.tasks WHERE parent_id = $1"
                "       AND status IN ('queued', 'running', 'retrying') FOR UPDATE) AS before"
                " WHERE t.id = before.id RETURNING t.id, before.status",
                uuid.UUID(task_id),
            )
            return _row(record), before, [str(c["id"]) for c in children if c["status"] == "running"]

    async def cancel_owned(self, owner_id: str) -> list[tuple[str, str]]:
        """Cancel every unfinished task of ``owner_id`` (an account disabled or deleted): (id, status before) of
        each, so the caller can stop the running ones. Their children are the owner's too, so they are in it."""
        records = await self._pool.fetch(
            "UPDATE tasks.tasks AS t SET status = 'cancelled', finished_at = now(), updated_at = now()"
            " FROM (SELECT id, status FROM tasks.tasks WHERE owner_id = $1"
            "       AND status IN ('queued', 'running', 'retrying', 'waiting_approval') FOR UPDATE) AS before"
            " WHERE t.id = before.id RETURNING t.id, before.status",
            owner_id,
        )
        return [(str(r["id"]), str(r["status"])) for r in records]

    async def replay(self, task_id: str) -> TaskRow | None:
        """dead or failed -> queued with fresh attempts."""
        record = await self._pool.fetchrow(
            f"UPDATE tasks.tasks SET status = 'queued', attempts = 0, error = NULL, finished_at = NULL,"
            f" started_at = NULL, replays = replays + 1, updated_at = now()"
            f" WHERE id = $1 AND status IN ('dead', 'failed') RETURNING {_COLUMNS}",
            uuid.UUID(task_id),
        )
        return _row(record) if record else None

    async def count_unfinished(self) -> int:
        """Tasks that still need their work message: queued, retrying or running (not yet acknowledged)."""
        return int(await self._pool.fetchval(
            "SELECT count(*) FROM tasks.tasks WHERE status IN ('queued', 'retrying', 'running')"))

    async def count_by_status(self, statuses: Sequence[str]) -> dict[str, int]:
        """Tasks per status, for the given statuses (unfinished ones and dead: ``tasks_status`` indexes them)."""
        records = await self._pool.fetch(
            "SELECT status, count(*) AS n FROM tasks.tasks WHERE status = ANY($1::text[]) GROUP BY status",
            list(statuses))
        return {r["status"]: int(r["n"]) for r in records}

    async def stale_queued(self, older_than_s: float, limit: int = 500) -> list[TaskRow]:
        """Queued tasks whose dispatch may have been lost (e.g. NATS was down when they were created)."""
        records = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM tasks.tasks WHERE status = 'queued'"
            f" AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2",
            older_than_s, limit,
        )
        return [_row(r) for r in records]
