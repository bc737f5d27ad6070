"""The task queue's depth, sampled from the real JetStream consumers and Postgres into gauges."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.model import NewTask
from sutazai_tasks.queue_depth import sample_once
from sutazai_tasks.store import TaskStore


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_waiting_work_shows_in_the_stream_the_consumer_and_the_table(store: TaskStore, bus: TaskBus) -> None:
    await sample_once(store, bus)
    queued_before = _gauge("sutazai_tasks_by_status", status="queued") or 0.0
    owner = f"u-{uuid.uuid4().hex[:6]}"
    for priority in (10, 10, 0):
        task, _ = await store.create(NewTask(owner_id=owner, task_type="echo", payload_json="{}", priority=priority))
        await bus.dispatch_stored(task)
    await sample_once(store, bus)
    assert _gauge("sutazai_tasks_stream_messages") == 3  # this test's own namespace: only these
    assert _gauge("sutazai_tasks_consumer_pending", priority="high") == 2
    assert _gauge("sutazai_tasks_consumer_pending", priority="low") == 1
    assert _gauge("sutazai_tasks_consumer_ack_pending", priority="high") == 0
    # the schema is shared with the session's other tests: at least these three more are queued
    assert (_gauge("sutazai_tasks_by_status", status="queued") or 0) >= queued_before + 3
    assert (_gauge("sutazai_tasks_queue_sampled_timestamp_seconds") or 0) > 0
