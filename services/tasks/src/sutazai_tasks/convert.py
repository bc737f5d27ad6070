"""Rows and events to protobuf messages. User data stays JSON text: bytes in the message, never a Struct."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sutazai.tasks.v1 import tasks_pb2
from sutazai_runtime.timestamps import set_timestamp, to_timestamp

from sutazai_tasks.model import TaskRow, dump_json

_STATUS = {
    "queued": tasks_pb2.TASK_STATUS_QUEUED, "running": tasks_pb2.TASK_STATUS_RUNNING,
    "retrying": tasks_pb2.TASK_STATUS_RETRYING, "completed": tasks_pb2.TASK_STATUS_COMPLETED,
    "failed": tasks_pb2.TASK_STATUS_FAILED, "cancelled": tasks_pb2.TASK_STATUS_CANCELLED,
    "dead": tasks_pb2.TASK_STATUS_DEAD, "waiting_approval": tasks_pb2.TASK_STATUS_WAITING_APPROVAL,
}
STATUS_NAMES = {v: k for k, v in _STATUS.items()}
_EVENT_KEYS = frozenset({"task_id", "type", "status", "token", "at"})


def status_enum(status: str) -> int:
    return _STATUS[status]


def to_proto(task: TaskRow) -> tasks_pb2.Task:
    return tasks_pb2.Task(
        task_id=task.id, task_type=task.task_type, payload_json=task.payload_json.encode(), priority=task.priority,
        agent_id=task.agent_id or "", status=status_enum(task.status), attempts=task.attempts,
        max_attempts=task.max_attempts, error=task.error or "", owner_id=task.owner_id,
        parent_id=task.parent_id or "", timeout_s=task.timeout_s,
        created_at=to_timestamp(task.created_at), started_at=to_timestamp(task.started_at),
        finished_at=to_timestamp(task.finished_at),
        result_json=task.result_json.encode() if task.result_json is not None else b"",
        pending_approval_json=task.pending_approval.encode() if task.pending_approval else b"",
        trace_id=task.trace_id or "",
    )


def state_event(task: TaskRow) -> tasks_pb2.TaskEvent:
    """The first event of a watch: the task's current state, its result spliced in as stored."""
    data = f'{{"attempts":{task.attempts},"result":{task.result_json or "null"},"error":{dump_json(task.error)}}}'
    return tasks_pb2.TaskEvent(task_id=task.id, type="state", status=status_enum(task.status),
                               data_json=data.encode())


def event_to_proto(raw: bytes) -> tuple[tasks_pb2.TaskEvent, str]:
    """An event as published on NATS (JSON) -> (message, status name)."""
    event: dict[str, Any] = json.loads(raw)
    extra = {k: v for k, v in event.items() if k not in _EVENT_KEYS}
    message = tasks_pb2.TaskEvent(
        task_id=event["task_id"], type=event["type"], status=status_enum(event["status"]),
        token=event.get("token", ""), data_json=dump_json(extra).encode(),
    )
    if event.get("at"):
        set_timestamp(message.at, datetime.fromisoformat(event["at"]))
    return message, event["status"]
