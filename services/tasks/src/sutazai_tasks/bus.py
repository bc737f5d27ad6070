"""The task context on NATS: work messages (JetStream ``TASKS``), dead letters (``TASKS_DEAD``), events
(``events.tasks.<id>``, captured by ``TASK_EVENTS``) and cancel requests (core NATS, to every worker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from sutazai_tasks.model import PRIORITY_CLASSES, PriorityClass, TaskRow, priority_class
from sutazai_tasks.streams import Names

ACK_WAIT_S = 30.0


def consumer_config(names: Names, klass: PriorityClass) -> ConsumerConfig:
    # Deliveries are not capped here: attempts are counted in Postgres, which moves a task to the
    # dead-letter stream when they run out (a cap here would silently drop the message instead).
    return ConsumerConfig(
        durable_name=names.consumer(klass), filter_subject=names.work(klass),
        ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_deliver=-1, max_ack_pending=20_000,
        deliver_policy=DeliverPolicy.ALL,
    )


def message_id(task: TaskRow) -> str:
    """De-duplicates re-publishes of one dispatch; a replay is a new dispatch with its own id."""
    return task.id if task.replays == 0 else f"{task.id}:replay:{task.replays}"


class TaskBus:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names) -> None:
        self.nc = nc
        self.js = js
        self.names = names

    async def ensure_consumers(self) -> None:
        for klass in PRIORITY_CLASSES:
            await self.js.add_consumer(self.names.tasks_stream, consumer_config(self.names, klass))

    async def dispatch(self, task: TaskRow, msg_id: str | None = None) -> None:
        """Publish the work message and wait for JetStream to store it. ``msg_id`` names a new dispatch of
        the same task (an agent run resumed after an approval), which de-duplication must not drop."""
        await self.js.publish(
            self.names.work(priority_class(task.priority)), json.dumps({"task_id": task.id}).encode(),
            headers={"Nats-Msg-Id": msg_id or message_id(task)},
        )

    async def dead_letter(self, task: TaskRow, error: str) -> None:
        body = {"task_id": task.id, "owner_id": task.owner_id, "task_type": task.task_type,
                "attempts": task.attempts, "error": error}
        await self.js.publish(self.names.dead(task.id), json.dumps(body).encode(),
                              headers={"Nats-Msg-Id": f"dead:{message_id(task)}"})

    async def event(self, task_id: str, kind: str, status: str, **data: Any) -> None:
        """Fire-and-forget: the stream captures it, and Postgres stays the source of truth."""
        body = {"task_id": task_id, "type": kind, "status": status, "at": datetime.now(UTC).isoformat(), **data}
        await self.nc.publish(self.names.event(task_id), json.dumps(body).encode())

    async def request_cancel(self, task_id: str) -> None:
        await self.nc.publish(self.names.cancel(task_id), b"")
