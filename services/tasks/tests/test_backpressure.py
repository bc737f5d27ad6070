"""Capacity is not failure, against the real NATS JetStream and PostgreSQL: a task whose model is busy goes
back to the queue without spending an attempt; a gate bounds the work in flight; each task is acknowledged
when it finishes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

import asyncpg
import pytest
from sutazai.chat.v1 import chat_pb2
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_tasks.bus import TaskBus, Work
from sutazai_tasks.capacity import ModelSlots, background_limits
from sutazai_tasks.errors import Busy
from sutazai_tasks.handlers import Gate, echo
from sutazai_tasks.model import NewTask, TaskRow, dump_json
from sutazai_tasks.server import sweep_stale
from sutazai_tasks.store import TaskStore, pool_setup

Fixture = Any


async def _submit(store: TaskStore, bus: TaskBus, task_type: str = "agent", **fields: Any) -> TaskRow:
    task, _ = await store.create(NewTask(owner_id="backpressure-test", task_type=task_type,
                                         payload_json=dump_json(fields.pop("payload", {"input": "x"})), **fields))
    await bus.dispatch(task)
    return task


async def test_a_busy_model_puts_the_task_back_without_spending_an_attempt(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    calls: dict[str, int] = {}
    seen: list[tuple[str, int]] = []

    async def busy_three_times(task: TaskRow, progress: Any) -> Any:
        calls[task.id] = calls.get(task.id, 0) + 1
        seen.append((task.status, task.attempts))
        if calls[task.id] <= 3:
            raise Busy("every backend serving 'm' is at its concurrency limit")
        return {"ok": True}

    # One attempt allowed: had a busy model cost an attempt, the task would be dead after the first.
    task = await _submit(store, bus, max_attempts=1)
    async with running_worker(store, bus, {"agent": busy_three_times}, busy_base_s=0.05):
        done = await until_final(store, task.id)
    assert (done.status, done.attempts, done.result(), done.error, calls[task.id]) == (
        "completed", 1, {"ok": True}, None, 4)
    assert seen == [("running", 1)] * 4  # each delivery claimed it afresh as attempt 1


async def test_a_busy_model_after_a_real_failure_keeps_that_failures_attempt(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    calls: list[int] = []

    async def fails_then_busy(task: TaskRow, progress: Any) -> Any:
        calls.append(task.attempts)
        if len(calls) == 1:
            raise ConnectionError("model server restarting")  # a real error: counts
        if len(calls) == 2:
            raise Busy("at capacity")  # does not
        return "ok"

    task = await _submit(store, bus, max_attempts=2)
    async with running_worker(store, bus, {"agent": fails_then_busy}, busy_base_s=0.05):
        done = await until_final(store, task.id)
    assert (done.status, done.attempts, done.result()) == ("completed", 2, "ok")
    assert calls == [1, 2, 2]


class _Gated:
    """A handler behind a gate of two slots (as the agent runner is behind its model's capacity)."""

    def __init__(self, slots: int) -> None:
        self.slots = ModelSlots(slots)
        self.running = 0
        self.most = 0
        self.refused = 0
        self.ran: dict[str, int] = {}

    async def admit(self, work: Work) -> bool:
        if await self.slots.acquire("m", 0.01):
            return True
        self.refused += 1
        return False

    def done(self, task_id: str) -> None:
        self.slots.release("m")

    async def __call__(self, task: TaskRow, progress: Any) -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        self.ran[task.id] = self.ran.get(task.id, 0) + 1
        try:
            await asyncio.sleep(0.05)
        finally:
            self.running -= 1
        return task.payload()


async def test_a_gate_bounds_the_work_in_flight_and_the_backlog_waits_in_the_queue_not_in_retries(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    gated = _Gated(2)
    assert isinstance(gated, Gate)
    tasks = [await _submit(store, bus, max_attempts=1, payload={"input": str(i)}) for i in range(12)]
    async with running_worker(store, bus, {"agent": gated}, busy_base_s=0.05):
        done = [await until_final(store, t.id, timeout_s=30) for t in tasks]
    assert [(t.status, t.attempts, t.result()) for t in done] == [
        ("completed", 1, {"input": str(i)}) for i in range(12)]
    assert gated.most == 2 and gated.refused > 0  # never more than the gate's slots; the rest was put back
    assert all(n == 1 for n in gated.ran.values())  # and a refused task was never claimed, so never run twice


async def test_each_task_is_acknowledged_when_it_finishes_not_when_its_batch_does(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    release = asyncio.Event()

    async def one_slow(task: TaskRow, progress: Any) -> Any:
        if task.payload().get("slow"):
            await release.wait()
        return "done"

    slow = await _submit(store, bus, task_type="echo", payload={"slow": True})
    fast = [await _submit(store, bus, task_type="echo", payload={"i": i}) for i in range(9)]
    async with running_worker(store, bus, {"echo": one_slow}, batch=100):
        finished = [await until_final(store, t.id) for t in fast]
        consumer = await bus.js.consumer_info(bus.names.tasks_stream, bus.names.consumer("low"))
        still = await store.get(slow.id)
        release.set()
        slow_done = await until_final(store, slow.id)
    assert [t.status for t in finished] == ["completed"] * 9
    assert still is not None and still.status == "running"
    assert consumer.num_ack_pending == 1  # only the slow task's message is still unacknowledged
    assert slow_done.status == "completed"


async def test_echo_returns_its_payload_exactly_as_stored(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    raw = '{"big": 12345678901234567891, "f": 1.0, "n": 7, "s": "naïve ☃", "deep": [[{"x": -0.0}]]}'
    task, _ = await store.create(NewTask(owner_id="backpressure-test", task_type="echo", payload_json=raw))
    await bus.dispatch(task)
    async with running_worker(store, bus, {"echo": echo}):
        done = await until_final(store, task.id)
    assert done.status == "completed"
    assert done.result_json == done.payload_json  # the text Postgres keeps, byte for byte
    for text in (done.payload_json, done.result_json):
        assert '"big": 12345678901234567891' in text and '"f": 1.0' in text and '"n": 7' in text
        assert "naïve ☃" in text


async def test_slots_follow_the_limits_chat_reports() -> None:
    slots = ModelSlots(default_limit=1)
    assert slots.try_acquire("m") and not slots.try_acquire("m")  # the default until chat answers
    slots.set_limits({"m": 3})
    assert slots.try_acquire("m") and slots.try_acquire("m") and not slots.try_acquire("m")
    waiter = asyncio.create_task(slots.acquire("m", 5))
    await asyncio.sleep(0)
    assert not waiter.done()
    slots.release("m")
    assert await waiter and slots.held("m") == 3
    assert not await slots.acquire("m", 0.01)
    slots.set_limits({"m": 0})  # others hold what is free: this worker takes no more
    slots.release("m")
    assert not slots.try_acquire("m")


def test_workers_share_a_models_capacity_by_what_each_holds_and_what_is_free() -> None:
    reply = chat_pb2.CapacityResponse(models=[
        chat_pb2.ModelCapacity(model="m", slots=4, background_slots=3, background_in_flight=2, in_flight=2),
        chat_pb2.ModelCapacity(model="full", slots=4, background_slots=3, background_in_flight=3, in_flight=4,
                               waiting=1),
        chat_pb2.ModelCapacity(model="down", slots=0, background_slots=0),
    ])
    held = {"m": 2, "full": 0}
    assert background_limits(reply, lambda model: held.get(model, 0)) == {"m": 3, "full": 0, "down": 1}


@pytest.fixture
async def own_store(postgres_url: str) -> AsyncIterator[TaskStore]:
    """A database of its own: the sweeper counts every unfinished task, and the shared one has other tests'."""
    name = f"tasks_sweep_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_url, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool = await create_pool(postgres_url.rsplit("/", 1)[0] + "/" + name, max_size=4, **pool_setup())
    try:
        await apply_migrations(pool, "tasks", load_migrations(files("sutazai_tasks") / "migrations"))
        yield TaskStore(pool)
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_sweeper_resends_a_lost_dispatch_but_not_a_backlog_that_is_waiting(
    own_store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture
) -> None:
    store = own_store
    waiting = await _submit(store, bus, task_type="echo")  # its message is in the stream
    lost, _ = await store.create(NewTask(owner_id="backpressure-test", task_type="echo", payload_json="{}"))

    async def messages() -> int:
        return (await bus.js.stream_info(bus.names.tasks_stream)).state.messages

    sweeps = 0
    counted = store.count_unfinished

    async def count_unfinished() -> int:
        nonlocal sweeps
        sweeps += 1
        return await counted()

    store.count_unfinished = count_unfinished  # type: ignore[method-assign]
    sweeper = asyncio.create_task(sweep_stale(store, bus, every_s=0.02, older_than_s=0))
    try:
        async with asyncio.timeout(10):
            while True:  # the lost one is re-sent ...
                if await messages() >= 2:
                    break
                await asyncio.sleep(0.02)
            resent_at = sweeps
            while True:  # ... and nothing more, sweep after sweep (their ids would de-duplicate within
                if sweeps >= resent_at + 10:  # JetStream's window, but not after it)
                    break
                await asyncio.sleep(0.02)
        assert await messages() == 2
    finally:
        sweeper.cancel()
    async with running_worker(store, bus, {"echo": echo}):
        assert [(await until_final(store, t.id)).status for t in (waiting, lost)] == ["completed", "completed"]
