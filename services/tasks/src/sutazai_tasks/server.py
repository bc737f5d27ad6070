"""gRPC servicer of the task context: validation and translation; the rules live in ``model`` and
``store``, the messaging in ``bus``. Payloads and results pass through as JSON text (validated once,
never turned into a Struct)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import grpc
from sutazai.common.v1 import common_pb2
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import Identity, require_admin, require_identity
from sutazai_runtime.unimplemented import placeholder_servicer

from sutazai_tasks import convert, metrics
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.coalesce import CreateCoalescer
from sutazai_tasks.errors import InvalidTaskError, TaskError, TaskNotFoundError, TaskStateError
from sutazai_tasks.model import TERMINAL, NewTask, TaskRow, dump_json, parse_payload, parse_task_id, validate_new_task
from sutazai_tasks.orchestration import orchestration_payload
from sutazai_tasks.steps import StepStore
from sutazai_tasks.store import TaskStore

SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"]
Ctx = grpc.aio.ServicerContext
log = logging.getLogger(__name__)

_CODES: dict[type[TaskError], grpc.StatusCode] = {
    InvalidTaskError: grpc.StatusCode.INVALID_ARGUMENT,
    TaskNotFoundError: grpc.StatusCode.NOT_FOUND,
    TaskStateError: grpc.StatusCode.FAILED_PRECONDITION,
}


async def _abort(context: Ctx, exc: TaskError) -> None:
    await context.abort(_CODES.get(type(exc), grpc.StatusCode.INTERNAL), str(exc))


def _page(page: object) -> tuple[int, int]:
    limit = getattr(page, "limit", 0) or 50
    offset = getattr(page, "offset", 0) or 0
    if not 1 <= limit <= 100 or offset < 0:
        raise InvalidTaskError("page: limit must be 1-100 and offset >= 0")
    return limit, offset


MAX_BULK = 1000


def _validated(identity: Identity, request: tasks_pb2.CreateTaskRequest) -> NewTask:
    return validate_new_task(
        owner_id=identity.user_id, task_type=request.task_type,
        payload_json=request.payload_json, priority=request.priority,
        agent_id=request.agent_id, idempotency_key=request.idempotency_key,
        timeout_s=request.timeout_s, max_attempts=request.max_attempts,
    )


class TaskServicer(
    placeholder_servicer(tasks_pb2_grpc.TaskServiceServicer, SERVICE, "not planned")  # type: ignore[misc]
):
    def __init__(self, store: TaskStore, bus: TaskBus) -> None:
        self._store = store
        self._bus = bus
        self._creates = CreateCoalescer(store)

    async def CreateTask(self, request: tasks_pb2.CreateTaskRequest, context: Ctx) -> tasks_pb2.Task:
        identity = await require_identity(context)
        try:
            new = _validated(identity, request)
        except TaskError as exc:
            await _abort(context, exc)
            raise
        task, created = await self._creates.create(new)
        if created:
            metrics.TASKS_CREATED.labels(task.task_type).inc()
        if task.status == "queued":
            await self._dispatch(task)
        # No "queued" event: a watcher reads the current state first, and it says queued.
        return convert.to_proto(task)

    async def _dispatch(self, task: TaskRow) -> None:
        try:
            await self._bus.dispatch(task)  # not awaited by JetStream; a repeat is de-duplicated by its message id
        except Exception as exc:
            # The task is durable in Postgres; the sweeper dispatches it once NATS answers again.
            log.warning("dispatch of %s deferred: %s", task.id, exc)

    async def CreateTasks(self, request: tasks_pb2.CreateTasksRequest, context: Ctx) -> tasks_pb2.CreateTasksResponse:
        """Bulk submission: one statement, concurrent dispatch. All or none: one bad item refuses the call."""
        identity = await require_identity(context)
        if not 1 <= len(request.tasks) <= MAX_BULK:
            await _abort(context, InvalidTaskError(f"tasks: between 1 and {MAX_BULK} per call"))
        news = []
        for index, item in enumerate(request.tasks):
            try:
                news.append(_validated(identity, item))
            except TaskError as exc:
                await _abort(context, type(exc)(f"tasks[{index}].{exc}"))
        results = await self._store.create_many(news)
        for task, created in results:
            if created:
                metrics.TASKS_CREATED.labels(task.task_type).inc()
            if task.status == "queued":
                await self._dispatch(task)
        return tasks_pb2.CreateTasksResponse(tasks=[convert.to_proto(t) for t, _ in results])

    async def GetTask(self, request: tasks_pb2.GetTaskRequest, context: Ctx) -> tasks_pb2.Task:
        identity = await require_identity(context)
        task = await self._owned(request.task_id, identity, context)
        return convert.to_proto(task)

    async def _owned(self, raw_id: str, identity: Identity, context: Ctx):  # type: ignore[no-untyped-def]
        try:
            task_id = parse_task_id(raw_id)
        except TaskError as exc:
            await _abort(context, exc)
            raise
        task = await self._store.get(task_id, identity.user_id)
        if task is None:
            await _abort(context, TaskNotFoundError(f"no task {task_id}"))
        return task

    async def ListTasks(self, request: tasks_pb2.ListTasksRequest, context: Ctx) -> tasks_pb2.ListTasksResponse:
        identity = await require_identity(context)
        status = convert.STATUS_NAMES.get(request.status) if request.status else None
        try:
            limit, offset = _page(request.page)
        except TaskError as exc:
            await _abort(context, exc)
            raise
        rows, total = await self._store.list(owner_id=identity.user_id, status=status, limit=limit, offset=offset)
        return tasks_pb2.ListTasksResponse(
            tasks=[convert.to_proto(r) for r in rows], page=common_pb2.PageInfo(total=total, limit=limit, offset=offset)
        )

    async def CancelTask(self, request: tasks_pb2.CancelTaskRequest, context: Ctx) -> tasks_pb2.Task:
        identity = await require_identity(context)
        await self._owned(request.task_id, identity, context)
        task, before, running_children = await self._store.cancel(parse_task_id(request.task_id), identity.user_id)
        assert task is not None
        if task.status != "cancelled" or before == "cancelled":
            await _abort(context, TaskStateError(f"task {task.id} is already {task.status}"))
        for task_id in ([task.id] if before == "running" else []) + running_children:
            await self._bus.request_cancel(task_id)
        await self._bus.event(task.id, "cancelled", "cancelled")
        return convert.to_proto(task)

    async def CancelOwnerTasks(
        self, request: tasks_pb2.CancelOwnerTasksRequest, context: Ctx
    ) -> tasks_pb2.CancelOwnerTasksResponse:
        """The gateway's call when an account is disabled or deleted: its queued work never runs, its running
        work is told to stop (the same cancel message ``CancelTask`` sends)."""
        await require_admin(context)
        owner_id = request.owner_id.strip()
        if not owner_id or len(owner_id) > 128:
            await _abort(context, InvalidTaskError("owner_id: 1 to 128 characters"))
        cancelled = await self._store.cancel_owned(owner_id)
        for task_id, before in cancelled:
            if before == "running":
                await self._bus.request_cancel(task_id)
            await self._bus.event(task_id, "cancelled", "cancelled", reason="the owner's account was disabled")
        if cancelled:
            log.info("cancelled the unfinished tasks of a disabled account",
                     extra={"owner_id": owner_id, "tasks": len(cancelled)})
        return tasks_pb2.CancelOwnerTasksResponse(cancelled=len(cancelled))

    async def ListDeadTasks(
        self, request: tasks_pb2.ListDeadTasksRequest, context: Ctx
    ) -> tasks_pb2.ListTasksResponse:
        await require_admin(context)
        try:
            limit, offset = _page(request.page)
        except TaskError as exc:
            await _abort(context, exc)
            raise
        rows, total = await self._store.list(owner_id=None, status="dead", limit=limit, offset=offset)
        return tasks_pb2.ListTasksResponse(
            tasks=[convert.to_proto(r) for r in rows], page=common_pb2.PageInfo(total=total, limit=limit, offset=offset)
        )

    async def ReplayTask(self, request: tasks_pb2.ReplayTaskRequest, context: Ctx) -> tasks_pb2.Task:
        await require_admin(context)
        try:
            task_id = parse_task_id(request.task_id)
        except TaskError as exc:
            await _abort(context, exc)
            raise
        task = await self._store.replay(task_id)
        if task is None:
            current = await self._store.get(task_id)
            if current is None:
                await _abort(context, TaskNotFoundError(f"no task {task_id}"))
            await _abort(context, TaskStateError(
                f"only dead or failed tasks can be replayed; {task_id} is {current.status}"))
        await self._bus.dispatch_stored(task)
        await self._bus.event(task.id, "queued", "queued", replay=task.replays)
        return convert.to_proto(task)

    async def DecideApproval(self, request: tasks_pb2.DecideApprovalRequest, context: Ctx) -> tasks_pb2.Task:
        """The owner (or an admin) approves or rejects the tool call a run waits at; the run is queued again."""
        identity = await require_identity(context)
        try:
            task_id = parse_task_id(request.task_id)
            task = await StepStore(self._store.pool).decide(
                task_id, None if identity.is_admin else identity.user_id, request.approve, request.reason)
        except TaskError as exc:
            await _abort(context, exc)
            raise
        decision = "approved" if request.approve else "rejected"
        await self._bus.dispatch_stored(task, msg_id=f"{task.id}:decision:{uuid.uuid4().hex}")
        await self._bus.event(task.id, decision, "queued", reason=request.reason)
        return convert.to_proto(task)

    async def Orchestrate(self, request: tasks_pb2.OrchestrateRequest, context: Ctx) -> tasks_pb2.Task:
        identity = await require_identity(context)
        try:
            payload = orchestration_payload(request.goal, list(request.agent_ids), request.mode or "sequential")
            if request.payload_json:
                payload["payload"] = parse_payload(request.payload_json)[1]
            if len(request.idempotency_key) > 200:
                raise InvalidTaskError("idempotency_key: at most 200 characters")
        except TaskError as exc:
            await _abort(context, exc)
            raise
        task, created = await self._store.create(NewTask(
            owner_id=identity.user_id, task_type="orchestrate", payload_json=dump_json(payload), priority=5,
            idempotency_key=request.idempotency_key or None, timeout_s=3600, max_attempts=1,
        ))
        if created:
            metrics.TASKS_CREATED.labels(task.task_type).inc()
        if task.status == "queued":
            await self._dispatch(task)
        return convert.to_proto(task)

    async def WatchTask(
        self, request: tasks_pb2.WatchTaskRequest, context: Ctx
    ) -> AsyncIterator[tasks_pb2.TaskEvent]:
        """The current state first, then every event until the task finishes or the caller leaves."""
        identity = await require_identity(context)
        task = await self._owned(request.task_id, identity, context)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)

        async def on_event(msg) -> None:  # type: ignore[no-untyped-def]
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(msg.data)

        # Subscribe before reading the state, so nothing between the two is missed.
        sub = await self._bus.nc.subscribe(self._bus.names.event(task.id), cb=on_event)
        try:
            current = await self._store.get(task.id)
            assert current is not None
            yield convert.state_event(current)
            if current.terminal:
                return
            while True:
                try:
                    event, status = convert.event_to_proto(await queue.get())
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("skipping a malformed event of task %s: %s", task.id, exc)
                    continue
                yield event
                if status in TERMINAL:
                    return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


async def sweep_stale(store: TaskStore, bus: TaskBus, *, every_s: float = 15.0, older_than_s: float = 30.0) -> None:
    """Re-dispatch queued tasks whose dispatch may have been lost (NATS down at creation, a publish that was
    never acknowledged). Only when the work stream holds fewer messages than there are unfinished tasks: a
    backlog waiting for a busy model is queued for long, yet its messages are all there, and re-sending them
    after the de-duplication window would only add copies. A needless re-send is harmless: the message id
    de-duplicates, and a claim is guarded."""
    while True:
        await asyncio.sleep(every_s)
        try:
            in_stream = (await bus.js.stream_info(bus.names.tasks_stream)).state.messages
            if in_stream >= await store.count_unfinished():
                continue
            for task in await store.stale_queued(older_than_s):
                await bus.dispatch_stored(task)
        except Exception as exc:
            log.warning("sweeping stale tasks failed: %s", exc)
