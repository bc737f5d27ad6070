"""The task context on NATS: work messages (JetStream ``TASKS``), dead letters (``TASKS_DEAD``), events
(``events.tasks.<id>``, captured by ``TASK_EVENTS``) and cancel requests (core NATS, to every worker).

Work is published without waiting for JetStream's acknowledgement: Postgres is the source of truth,
and a message lost on the way (NATS down, a full buffer) is re-sent by the sweeper (``server.sweep_stale``);
the message id (``Nats-Msg-Id``) makes a re-send of a message that did arrive a no-op."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sutazai_runtime.telemetry import trace_headers

from sutazai_tasks.model import PRIORITY_CLASSES, PriorityClass, TaskRow, dump_json, priority_class
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


@dataclass(frozen=True, slots=True)
class Work:
    """A work message: the task id, plus what a worker needs to admit it before claiming it."""

    task_id: str
    task_type: str = ""
    agent_id: str = ""

    def encode(self) -> bytes:
        return json.dumps({"task_id": self.task_id, "task_type": self.task_type, "agent_id": self.agent_id}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Work | None:
        try:
            body = json.loads(data)
            return cls(str(body["task_id"]), str(body.get("task_type") or ""), str(body.get("agent_id") or ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def encode_event(fields: dict[str, Any]) -> bytes:
    """One JSON object; a ``RawJson`` value (a stored result) goes in as it is."""
    return ("{" + ",".join(f"{json.dumps(k)}:{dump_json(v)}" for k, v in fields.items()) + "}").encode()


def _headers(task: TaskRow, msg_id: str | None) -> dict[str, str]:
    """The message id, and the task's trace context (W3C ``traceparent``) when it was created in a trace:
    every dispatch of a task continues the trace of its creation."""
    headers = {"Nats-Msg-Id": msg_id or message_id(task)}
    if task.trace_id:
        headers.update(trace_headers(task.trace_id, task.span_id))
    return headers


class TaskBus:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names) -> None:
        self.nc = nc
        self.js = js
        self.names = names

    async def ensure_consumers(self) -> None:
        for klass in PRIORITY_CLASSES:
            await self.js.add_consumer(self.names.tasks_stream, consumer_config(self.names, klass))

    async def dispatch(self, task: TaskRow, msg_id: str | None = None) -> None:
        """Publish the work message (into the stream, without waiting for its acknowledgement). ``msg_id``
        names a new dispatch of the same task (an agent run resumed after an approval), which
        de-duplication must not drop."""
        work = Work(task.id, task.task_type, task.agent_id or "")
        await self.nc.publish(self.names.work(priority_class(task.priority)), work.encode(),
                              headers=_headers(task, msg_id))

    async def dispatch_stored(self, task: TaskRow, msg_id: str | None = None) -> None:
        """Publish and wait until JetStream has stored it (replays, the sweeper, approvals: rare, and worth
        knowing)."""
        work = Work(task.id, task.task_type, task.agent_id or "")
        await self.js.publish(self.names.work(priority_class(task.priority)), work.encode(),
                              headers=_headers(task, msg_id))

    async def dead_letter(self, task: TaskRow, error: str) -> None:
        body = {"task_id": task.id, "owner_id": task.owner_id, "task_type": task.task_type,
                "attempts": task.attempts, "error": error}
        await self.js.publish(self.names.dead(task.id), json.dumps(body).encode(),
                              headers={"Nats-Msg-Id": f"dead:{message_id(task)}"})

    async def event(self, task_id: str, kind: str, status: str, **data: Any) -> None:
        """Fire-and-forget: the stream captures it, and Postgres stays the source of truth."""
        body = {"task_id": task_id, "type": kind, "status": status, "at": datetime.now(UTC).isoformat(), **data}
        await self.nc.publish(self.names.event(task_id), encode_event(body))

    async def request_cancel(self, task_id: str) -> None:
        await self.nc.publish(self.names.cancel(task_id), b"")
