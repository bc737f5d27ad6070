"""Rows and events to protobuf messages."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from sutazai.tasks.v1 import tasks_pb2

from sutazai_tasks.model import TaskRow

_STATUS = {
    "queued": tasks_pb2.TASK_STATUS_QUEUED, "running": tasks_pb2.TASK_STATUS_RUNNING,
    "retrying": tasks_pb2.TASK_STATUS_RETRYING, "completed": tasks_pb2.TASK_STATUS_COMPLETED,
    "failed": tasks_pb2.TASK_STATUS_FAILED, "cancelled": tasks_pb2.TASK_STATUS_CANCELLED,
    "dead": tasks_pb2.TASK_STATUS_DEAD, "waiting_approval": tasks_pb2.TASK_STATUS_WAITING_APPROVAL,
}
STATUS_NAMES = {v: k for k, v in _STATUS.items()}


def status_enum(status: str) -> int:
    return _STATUS[status]


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def to_proto(task: TaskRow) -> tasks_pb2.Task:
    message = tasks_pb2.Task(
        task_id=task.id, task_type=task.task_type, payload=struct(task.payload), priority=task.priority,
        agent_id=task.agent_id or "", status=status_enum(task.status), attempts=task.attempts,
        max_attempts=task.max_attempts, error=task.error or "", owner_id=task.owner_id,
        parent_id=task.parent_id or "", timeout_s=task.timeout_s,
        created_at=_ts(task.created_at), started_at=_ts(task.started_at), finished_at=_ts(task.finished_at),
    )
    if task.result is not None:
        json_format.ParseDict(task.result, message.result)
    if task.pending_approval is not None:
        message.pending_approval_json = json.dumps(task.pending_approval)
    return message


def event_to_proto(event: dict[str, Any]) -> tasks_pb2.TaskEvent:
    extra = {k: v for k, v in event.items() if k not in ("task_id", "type", "status", "token", "at")}
    message = tasks_pb2.TaskEvent(
        task_id=event["task_id"], type=event["type"], status=status_enum(event["status"]),
        token=event.get("token", ""), data=struct(extra),
    )
    if event.get("at"):
        message.at.FromDatetime(datetime.fromisoformat(event["at"]))
    return message
