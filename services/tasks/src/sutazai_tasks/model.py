"""Task rules without I/O: validation, priorities, back-off, states."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sutazai_runtime.telemetry import current_ids

from sutazai_tasks.errors import InvalidTaskError

# The metadata of a call made for a task's owner. Asked for at each call, since an agent run outlives any one
# identity proof: it returns a proof that is still fresh (``sutazai_runtime.identity.ProofMinter.attach``).
CallMetadata = Callable[[], tuple[tuple[str, str], ...]]
# The name the task workers sign identities with (their proofs' ``iss``).
WORKER_ISSUER = "tasks-worker"

Status = Literal["queued", "running", "retrying", "completed", "failed", "cancelled", "dead", "waiting_approval"]
STATUSES: tuple[Status, ...] = ("queued", "running", "retrying", "completed", "failed", "cancelled", "dead",
                                "waiting_approval")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "dead"})
BUILT_IN_TYPES = frozenset({"echo", "agent", "mesh"})  # "orchestrate" is created only through Orchestrate
PriorityClass = Literal["high", "normal", "low"]
PRIORITY_CLASSES: tuple[PriorityClass, ...] = ("high", "normal", "low")

MAX_PAYLOAD_BYTES = 256 * 1024
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TIMEOUT_S = 300


def priority_class(priority: int) -> PriorityClass:
    """The original's bands: >= 10 high, 5-9 normal, < 5 low."""
    if priority >= 10:
        return "high"
    return "normal" if priority >= 5 else "low"


def backoff_s(attempt: int, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Delay before retry number ``attempt`` (1-based): 1, 2, 4, ... capped."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))


class RawJson(str):
    """JSON text to be stored and sent as it is (a handler's result that is already JSON, e.g. echo's)."""


def dump_json(value: Any) -> str:
    """The one JSON encoder for user data: the stdlib keeps ints of any size and 1.0 apart from 1
    (orjson refuses ints beyond 64 bits)."""
    if isinstance(value, RawJson):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_payload(raw: bytes | str) -> tuple[str, dict[str, Any]]:
    """A payload as JSON text and as a dict, or ``InvalidTaskError``: it must be one JSON object.
    Empty means ``{}``."""
    if len(raw) > MAX_PAYLOAD_BYTES:  # checked before parsing (a str is at least as long in UTF-8)
        raise InvalidTaskError(f"payload: larger than {MAX_PAYLOAD_BYTES} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError as exc:
            raise InvalidTaskError("payload: not UTF-8") from exc
    if not raw.strip():
        return "{}", {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidTaskError(f"payload: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidTaskError(f"payload: must be a JSON object, not {type(value).__name__}")
    return raw, value


@dataclass(frozen=True, slots=True)
class NewTask:
    owner_id: str
    task_type: str
    payload_json: str  # a JSON object, as the client sent it
    priority: int = 0
    agent_id: str | None = None
    idempotency_key: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    parent_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # (trace id, span id) of the span the task is created in; None while tracing is off
    trace: tuple[str, str] | None = field(default_factory=current_ids)


def validate_new_task(
    *, owner_id: str, task_type: str, payload_json: bytes | str, priority: int, agent_id: str,
    idempotency_key: str, timeout_s: int, max_attempts: int,
) -> NewTask:
    """A ``NewTask`` from request fields (0 / empty meaning "default"), or ``InvalidTaskError`` naming the field.
    The payload is parsed once, to check it, and kept as the text the client sent."""
    text, payload = parse_payload(payload_json)
    if task_type not in BUILT_IN_TYPES:
        raise InvalidTaskError(f"task_type: must be one of {sorted(BUILT_IN_TYPES)}, not {task_type!r}")
    if task_type == "agent":
        if not agent_id:
            raise InvalidTaskError("agent_id: required for task_type 'agent'")
        if not isinstance(payload.get("input"), str) or not payload["input"].strip():
            raise InvalidTaskError("payload.input: an agent task needs a non-empty text input")
    if task_type == "mesh" and (not isinstance(payload.get("service"), str) or not payload["service"]):
        raise InvalidTaskError("payload.service: a mesh task names the service to deliver to")
    if not -1000 <= priority <= 1000:
        raise InvalidTaskError("priority: must be between -1000 and 1000")
    if len(idempotency_key) > 200:
        raise InvalidTaskError("idempotency_key: at most 200 characters")
    if timeout_s and not 1 <= timeout_s <= 3600:
        raise InvalidTaskError("timeout_s: between 1 and 3600")
    if max_attempts and not 1 <= max_attempts <= 10:
        raise InvalidTaskError("max_attempts: between 1 and 10")
    return NewTask(
        owner_id=owner_id, task_type=task_type, payload_json=text, priority=priority, agent_id=agent_id or None,
        idempotency_key=idempotency_key or None, timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
        max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
    )


def parse_task_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise InvalidTaskError(f"task_id: {value!r} is not a UUID") from exc


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    owner_id: str
    task_type: str
    payload_json: str  # JSON text, as stored (jsonb keeps every number exactly)
    priority: int
    agent_id: str | None
    status: Status
    attempts: int
    max_attempts: int
    timeout_s: int
    result_json: str | None
    error: str | None
    idempotency_key: str | None
    parent_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    completions: int
    replays: int
    pending_approval: str | None = None  # waiting_approval: the tool call awaiting a decision (JSON text)
    trace_id: str | None = None  # the trace the task was created in, and the span that created it (hex)
    span_id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def payload(self) -> dict[str, Any]:
        value = json.loads(self.payload_json)
        return value if isinstance(value, dict) else {}

    def result(self) -> Any:
        return None if self.result_json is None else json.loads(self.result_json)
