"""Tasks: create, read, list, cancel, events (SSE), dead letters and replay. Translation only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import grpc
from fastapi import HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sutazai.common.v1 import common_pb2
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.timestamps import iso_of

from sutazai_gateway.api.deps import AdminUser, CurrentUser, StateDep, call_metadata
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/tasks", tags=["tasks"])

StatusName = Literal["queued", "running", "retrying", "completed", "failed", "cancelled", "dead",
                     "waiting_approval"]
_STATUS_NAME = {getattr(tasks_pb2, f"TASK_STATUS_{s.upper()}"): s for s in StatusName.__args__}  # type: ignore[attr-defined]
_STATUS_VALUE = {v: k for k, v in _STATUS_NAME.items()}


class CreateTask(BaseModel):
    task_type: str = Field(min_length=1, max_length=100, description="'agent', or a built-in type such as 'echo'")
    payload: dict[str, Any]
    priority: int = Field(0, ge=-1000, le=1000, description=">= 10 high, 5-9 normal, < 5 low")
    agent_id: str | None = Field(None, max_length=64)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    timeout_s: int | None = Field(None, ge=1, le=3600)
    max_attempts: int | None = Field(None, ge=1, le=10)


def _stub(state: StateDep) -> tasks_pb2_grpc.TaskServiceStub:
    return state.upstreams["tasks"].stub(tasks_pb2_grpc.TaskServiceStub)


def _json(raw: bytes, empty: Any = None) -> Any:
    """User data from the tasks service (JSON text, as the client sent it); stdlib json keeps big ints and
    1.0 apart from 1 on the way to the response."""
    return json.loads(raw) if raw else empty


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def task_json(task: tasks_pb2.Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "status": _STATUS_NAME.get(task.status, "unknown"),
        "task_type": task.task_type,
        "agent_id": task.agent_id or None,
        "priority": task.priority,
        "payload": _json(task.payload_json, {}),
        "result": _json(task.result_json),
        "error": task.error or None,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "timeout_s": task.timeout_s,
        "created_at": iso_of(task, "created_at"),
        "started_at": iso_of(task, "started_at"),
        "finished_at": iso_of(task, "finished_at"),
        "trace_id": task.trace_id or None,  # the OpenTelemetry trace the task was created in (tracing on)
        **({"pending_approval": json.loads(task.pending_approval_json)} if task.pending_approval_json else {}),
    }


def _task_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError as exc:
        raise HTTPException(400, f"{raw!r} is not a valid task id (a UUID)") from exc


TaskId = Annotated[str, Path(max_length=64)]


def _create_request(body: CreateTask) -> tasks_pb2.CreateTaskRequest:
    return tasks_pb2.CreateTaskRequest(
        task_type=body.task_type, priority=body.priority, agent_id=body.agent_id or "",
        idempotency_key=body.idempotency_key or "", timeout_s=body.timeout_s or 0,
        max_attempts=body.max_attempts or 0, payload_json=_dump(body.payload),
    )


@router.post("", status_code=202, response_model=None, responses=problem_responses(400, 401, 404, 413, 422, 503, 504))
async def create_task(body: CreateTask, user: CurrentUser, state: StateDep) -> JSONResponse:
    """Queue a task: 202 ``{task_id, status: "queued", result{message}, created_at}``. The hot path of
    bulk submission, so the reply is small and serialised directly (read the task with GET)."""
    with upstream_errors("tasks"):  # concurrent submissions of this user share one CreateTasks call
        task = await state.task_submitter.create(_create_request(body), user, call_metadata(user))
    status = _STATUS_NAME.get(task.status, "unknown")
    return JSONResponse({"task_id": task.task_id, "status": status, "result": {"message": f"task {status}"},
                         "created_at": iso_of(task, "created_at")}, status_code=202)


class CreateTasks(BaseModel):
    tasks: list[CreateTask] = Field(min_length=1, max_length=500)


@router.post("/batch", status_code=202, response_model=None,
             responses=problem_responses(400, 401, 404, 413, 422, 503, 504))
async def create_tasks(body: CreateTasks, user: CurrentUser, state: StateDep) -> JSONResponse:
    """Queue up to 500 tasks in one request (all or none): 202 ``{items: [{task_id, status}], count}``
    in the order given. Each item takes the same fields as ``POST /api/v1/tasks``."""
    request = tasks_pb2.CreateTasksRequest(tasks=[_create_request(t) for t in body.tasks])
    with upstream_errors("tasks"):
        reply = await _stub(state).CreateTasks(request, metadata=user.to_metadata())
    items = [{"task_id": t.task_id, "status": _STATUS_NAME.get(t.status, "unknown")} for t in reply.tasks]
    return JSONResponse({"items": items, "count": len(items)}, status_code=202)


def _page(reply: tasks_pb2.ListTasksResponse, limit: int, offset: int) -> dict[str, Any]:
    return {"items": [task_json(t) for t in reply.tasks], "total": reply.page.total, "limit": limit,
            "offset": offset}


Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]  # the wire field is an int32


@router.get("", responses=problem_responses(400, 401, 422, 503, 504))
async def list_tasks(
    user: CurrentUser, state: StateDep, status: StatusName | None = None, limit: Limit = 50, offset: Offset = 0,
) -> dict[str, Any]:
    request = tasks_pb2.ListTasksRequest(page=common_pb2.PageRequest(limit=limit, offset=offset))
    if status:
        request.status = _STATUS_VALUE[status]
    with upstream_errors("tasks"):
        reply = await _stub(state).ListTasks(request, metadata=user.to_metadata())
    return _page(reply, limit, offset)


@router.get("/dead", responses=problem_responses(400, 401, 403, 422, 503, 504))
async def list_dead(user: AdminUser, state: StateDep, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    request = tasks_pb2.ListDeadTasksRequest(page=common_pb2.PageRequest(limit=limit, offset=offset))
    with upstream_errors("tasks"):
        reply = await _stub(state).ListDeadTasks(request, metadata=user.to_metadata())
    return _page(reply, limit, offset)


async def _one(state: StateDep, user: CurrentUser, method: str, request: Any) -> dict[str, Any]:
    """Call a TaskService method that answers with one task, and render it."""
    with upstream_errors("tasks"):
        task = await getattr(_stub(state), method)(request, metadata=call_metadata(user))
    return task_json(task)


@router.get("/{task_id}", responses=problem_responses(400, 401, 404, 422, 503, 504))
async def get_task(task_id: TaskId, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    return await _one(state, user, "GetTask", tasks_pb2.GetTaskRequest(task_id=_task_id(task_id)))


@router.post("/{task_id}/cancel", responses=problem_responses(400, 401, 404, 409, 422, 503, 504))
async def cancel_task(task_id: TaskId, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    return await _one(state, user, "CancelTask", tasks_pb2.CancelTaskRequest(task_id=_task_id(task_id)))


@router.post("/{task_id}/replay", responses=problem_responses(400, 401, 403, 404, 409, 422, 503, 504))
async def replay_task(task_id: TaskId, user: AdminUser, state: StateDep) -> dict[str, Any]:
    return await _one(state, user, "ReplayTask", tasks_pb2.ReplayTaskRequest(task_id=_task_id(task_id)))


class Decision(BaseModel):
    reason: str = Field("", max_length=2000, description="a rejection's reason reaches the model as the tool result")


_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the task id is not a UUID", "content": {"application/problem+json": {}}},
    404: {"description": "no such task, or not the caller's", "content": {"application/problem+json": {}}},
    409: {"description": "the task is not waiting for an approval", "content": {"application/problem+json": {}}},
}


@router.post("/{task_id}/approve", responses=_DECISION_RESPONSES)
async def approve_task(task_id: TaskId, user: CurrentUser, state: StateDep,
                       body: Decision | None = None) -> dict[str, Any]:
    """Let the tool call a ``waiting_approval`` agent run is parked at go ahead (its owner or an admin)."""
    return await _one(state, user, "DecideApproval", tasks_pb2.DecideApprovalRequest(
        task_id=_task_id(task_id), approve=True, reason=body.reason if body else ""))


@router.post("/{task_id}/reject", responses=_DECISION_RESPONSES)
async def reject_task(task_id: TaskId, user: CurrentUser, state: StateDep,
                      body: Decision | None = None) -> dict[str, Any]:
    """Refuse the pending tool call; the run goes on with the refusal as the tool's result."""
    return await _one(state, user, "DecideApproval", tasks_pb2.DecideApprovalRequest(
        task_id=_task_id(task_id), approve=False, reason=body.reason if body else ""))


@router.get("/{task_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "one event per change"},
                       **problem_responses(400, 401, 404, 422, 503, 504)})
async def task_events(task_id: TaskId, request: Request, user: CurrentUser, state: StateDep) -> StreamingResponse:
    """Server-Sent Events: the current state first, then each change and streamed token, until the task ends."""
    request_message = tasks_pb2.WatchTaskRequest(task_id=_task_id(task_id))
    # Read the first event before answering, so an unknown task is a 404 rather than an empty stream.
    with upstream_errors("tasks"):
        call = _stub(state).WatchTask(request_message, metadata=user.to_metadata(), timeout=3600)
        first = await call.read()

    async def events() -> AsyncIterator[bytes]:
        event = first
        try:
            while event is not grpc.aio.EOF:
                body = {"task_id": event.task_id, "status": _STATUS_NAME.get(event.status, "unknown"),
                        **_json(event.data_json, {})}
                if event.token:
                    body["token"] = event.token
                yield f"event: {event.type}\ndata: {json.dumps(body)}\n\n".encode()
                event = await call.read()
        except grpc.aio.AioRpcError as exc:
            yield f"event: error\ndata: {json.dumps({'error': exc.code().name})}\n\n".encode()
        finally:
            call.cancel()  # the client left, or the stream ended: release the upstream call

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


orchestrate_router = PrefixedRouter(prefix="/api/v1", tags=["tasks"])


class Orchestrate(BaseModel):
    goal: str = Field(min_length=1, max_length=20_000)
    agents: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=10)
    mode: Literal["sequential", "parallel"] = "sequential"
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


@orchestrate_router.post("/orchestrate", status_code=202,
                         responses=problem_responses(400, 401, 404, 413, 422, 503, 504))
async def orchestrate(body: Orchestrate, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """Run ``goal`` through ``agents`` as child tasks; the returned parent task aggregates their results.
    Sequential steps get the previous step's output; cancelling the parent cancels the children."""
    request = tasks_pb2.OrchestrateRequest(goal=body.goal, agent_ids=body.agents, mode=body.mode,
                                           idempotency_key=body.idempotency_key or "")
    with upstream_errors("tasks"):
        task = await _stub(state).Orchestrate(request, metadata=user.to_metadata())
    return {"task_id": task.task_id, "status": _STATUS_NAME.get(task.status, "unknown"), "task": task_json(task)}
