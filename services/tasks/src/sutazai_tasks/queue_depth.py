"""Task queue depth, sampled every few seconds into Prometheus gauges (never computed per scrape).

JetStream says what waits to be delivered: messages in the work stream, and per priority consumer the
messages not yet delivered (``num_pending``) and those delivered but not acknowledged (``num_ack_pending``,
tasks being run or waiting for a redelivery). Postgres says where the tasks are: counts of the unfinished
states and of dead letters (the partial index ``tasks_status`` covers them; finished states are never
counted, so the statement stays cheap as history grows)."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge

from sutazai_tasks.bus import TaskBus
from sutazai_tasks.model import PRIORITY_CLASSES
from sutazai_tasks.store import TaskStore

log = logging.getLogger(__name__)

STREAM_MESSAGES = Gauge("sutazai_tasks_stream_messages", "messages in the work stream (sampled)")
CONSUMER_PENDING = Gauge("sutazai_tasks_consumer_pending", "work messages not yet delivered, per priority (sampled)",
                         ["priority"])
CONSUMER_ACK_PENDING = Gauge("sutazai_tasks_consumer_ack_pending",
                             "work messages delivered and not yet acknowledged, per priority (sampled)", ["priority"])
BY_STATUS = Gauge("sutazai_tasks_by_status", "tasks per unfinished state and dead letters (sampled)", ["status"])
SAMPLED_AT = Gauge("sutazai_tasks_queue_sampled_timestamp_seconds", "when the queue was last sampled")
COUNTED = ("queued", "running", "retrying", "waiting_approval", "dead")


async def sample_once(store: TaskStore, bus: TaskBus) -> None:
    info = await bus.js.stream_info(bus.names.tasks_stream)
    STREAM_MESSAGES.set(info.state.messages)
    for klass in PRIORITY_CLASSES:
        consumer = await bus.js.consumer_info(bus.names.tasks_stream, bus.names.consumer(klass))
        CONSUMER_PENDING.labels(klass).set(consumer.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(klass).set(consumer.num_ack_pending or 0)
    counts = await store.count_by_status(COUNTED)
    for status in COUNTED:
        BY_STATUS.labels(status).set(counts.get(status, 0))
    SAMPLED_AT.set_to_current_time()


async def sample_queue_depth(store: TaskStore, bus: TaskBus, *, every_s: float) -> None:
    """``sample_once`` every ``every_s`` seconds; a failed round (NATS or Postgres away) keeps the last values."""
    while True:
        try:
            async with asyncio.timeout(max(every_s, 5.0)):
                await sample_once(store, bus)
        except Exception as exc:
            log.warning("sampling the task queue failed: %s", exc)
        await asyncio.sleep(every_s)
