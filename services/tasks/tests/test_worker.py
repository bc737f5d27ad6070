"""Workers against the real NATS JetStream and PostgreSQL: retries, dead letters, priorities, cancel."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.errors import PermanentError
from sutazai_tasks.handlers import echo
from sutazai_tasks.model import NewTask, TaskRow, dump_json
from sutazai_tasks.store import TaskStore

Fixture = Any


async def _submit(store: TaskStore, bus: TaskBus, task_type: str = "echo", **fields: Any) -> TaskRow:
    task, _ = await store.create(NewTask(owner_id="worker-test", task_type=task_type,
                                         payload_json=dump_json(fields.pop("payload", {"n": 1})), **fields))
    await bus.dispatch(task)
    return task


async def test_echo_tasks_complete_with_their_payload(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    tasks = [await _submit(store, bus, payload={"i": i}) for i in range(20)]
    async with running_worker(store, bus, {"echo": echo}):
        done = [await until_final(store, t.id) for t in tasks]
    assert [(t.status, t.result(), t.completions) for t in done] == [("completed", {"i": i}, 1) for i in range(20)]


async def test_retryable_failures_are_retried_until_they_succeed(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    calls: dict[str, int] = {}

    async def flaky(task: TaskRow, progress: Any) -> Any:
        calls[task.id] = calls.get(task.id, 0) + 1
        if calls[task.id] < 3:
            raise ConnectionError("model server restarting")
        return "ok"

    task = await _submit(store, bus, task_type="agent", max_attempts=3)
    async with running_worker(store, bus, {"agent": flaky}):
        done = await until_final(store, task.id)
    assert (done.status, done.attempts, done.result(), calls[task.id]) == ("completed", 3, "ok", 3)


async def test_exhausted_attempts_go_to_the_dead_letter_stream(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    async def broken(task: TaskRow, progress: Any) -> Any:
        raise TimeoutError("never answers")

    task = await _submit(store, bus, task_type="agent", max_attempts=2)
    async with running_worker(store, bus, {"agent": broken}):
        done = await until_final(store, task.id)
    assert (done.status, done.attempts) == ("dead", 2)
    assert "never answers" in (done.error or "")
    sub = await bus.js.pull_subscribe(bus.names.dead(task.id), durable=None, stream=bus.names._stream("TASKS_DEAD"))
    [letter] = await sub.fetch(1, timeout=5)
    assert json.loads(letter.data)["task_id"] == task.id


async def test_permanent_failures_stop_at_once(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    async def refuses(task: TaskRow, progress: Any) -> Any:
        raise PermanentError("unknown agent")

    task = await _submit(store, bus, task_type="agent", max_attempts=5)
    async with running_worker(store, bus, {"agent": refuses}):
        done = await until_final(store, task.id)
    assert (done.status, done.attempts, done.error) == ("failed", 1, "unknown agent")


async def test_a_high_priority_task_starts_before_a_low_backlog(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    low = [await _submit(store, bus, priority=0) for _ in range(1000)]
    high = await _submit(store, bus, priority=10)
    async with running_worker(store, bus, {"echo": echo}, batch=50):
        high_done = await until_final(store, high.id)
        last_low = await until_final(store, low[-1].id, timeout_s=60)
    assert high_done.started_at is not None and last_low.started_at is not None
    started_after_high = await store._pool.fetchval(  # counting rows for the assertion
        "SELECT count(*) FROM tasks.tasks WHERE id = ANY($1::uuid[]) AND started_at > $2",
        [uuid.UUID(t.id) for t in low], high_done.started_at,
    )
    assert started_after_high >= 950  # at most the first batch of lows ran before it


async def test_cancelling_a_running_task_stops_its_handler(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture, stoppable: Fixture
) -> None:
    task = await _submit(store, bus, task_type="agent")
    async with running_worker(store, bus, {"agent": stoppable}):
        await asyncio.wait_for(stoppable.started.wait(), 10)
        _, before, _ = await store.cancel(task.id, "worker-test")
        assert before == "running"
        await bus.request_cancel(task.id)
        await asyncio.wait_for(stoppable.stopped.wait(), 5)
    final = await store.get(task.id)
    assert final is not None and (final.status, final.result(), final.completions) == ("cancelled", None, 0)


@pytest.mark.parametrize("body", [b"not json", b'{"other": 1}'])
async def test_malformed_work_messages_are_dropped(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture, body: bytes
) -> None:
    await bus.js.publish(bus.names.work("low"), body)
    task = await _submit(store, bus)
    async with running_worker(store, bus, {"echo": echo}):
        assert (await until_final(store, task.id)).status == "completed"
    info = await bus.js.stream_info(bus.names.tasks_stream)
    assert info.state.messages == 0  # nothing left to redeliver forever
