"""An account disabled or deleted at the gateway: ``CancelOwnerTasks`` cancels its unfinished tasks (a running one
stops its handler), leaves its finished ones and everybody else's alone, and answers only an admin."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import IdentityInterceptor, IdentitySettings, testing
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.handlers import echo
from sutazai_tasks.model import NewTask, TaskRow, dump_json
from sutazai_tasks.server import TaskServicer
from sutazai_tasks.store import TaskStore

Fixture = Any


@contextlib.asynccontextmanager
async def serving(store: TaskStore, bus: TaskBus) -> AsyncIterator[tasks_pb2_grpc.TaskServiceStub]:
    """The servicer behind the identity check every service runs (``grpc_server.serve`` installs the same)."""
    server = grpc.aio.server(interceptors=[IdentityInterceptor(IdentitySettings().verifier())])
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(store, bus), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield tasks_pb2_grpc.TaskServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


async def _submit(store: TaskStore, bus: TaskBus | None, owner: str, task_type: str = "echo") -> TaskRow:
    """A task in Postgres, and its work message on the bus unless ``bus`` is None (then it stays queued: no
    worker hears of it)."""
    task, _ = await store.create(NewTask(owner_id=owner, task_type=task_type, payload_json=dump_json({"n": 1})))
    if bus is not None:
        await bus.dispatch(task)
    return task


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_a_disabled_owners_queued_and_running_tasks_are_cancelled(
    store: TaskStore, bus: TaskBus, running_worker: Fixture, until_final: Fixture, stoppable: Fixture
) -> None:
    owner, other = f"owner-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"

    finished = await _submit(store, bus, owner)
    async with running_worker(store, bus, {"echo": echo}):
        assert (await until_final(store, finished.id)).status == "completed"
    running = await _submit(store, bus, owner, "agent")
    async with serving(store, bus) as stub, running_worker(store, bus, {"agent": stoppable}):
        await asyncio.wait_for(stoppable.started.wait(), 10)
        queued = [await _submit(store, None, owner) for _ in range(3)]
        others = await _submit(store, None, other)
        reply = await stub.CancelOwnerTasks(tasks_pb2.CancelOwnerTasksRequest(owner_id=owner),
                                            metadata=testing.metadata("admin-1", admin=True), timeout=10)
        assert reply.cancelled == 4  # the running one and the three queued
        await asyncio.wait_for(stoppable.stopped.wait(), 5)  # the running handler was told to stop
        again = await stub.CancelOwnerTasks(tasks_pb2.CancelOwnerTasksRequest(owner_id=owner),
                                            metadata=testing.metadata("admin-1", admin=True), timeout=10)
        assert again.cancelled == 0  # nothing left: repeating is harmless
    after = {t.id: await store.get(t.id) for t in (finished, running, *queued, others)}
    assert after[finished.id].status == "completed"  # type: ignore[union-attr]
    assert [after[t.id].status for t in (running, *queued)] == ["cancelled"] * 4  # type: ignore[union-attr]
    assert after[others.id].status == "queued"  # type: ignore[union-attr]


async def test_only_an_admin_may_cancel_an_owners_tasks_and_bad_ids_are_refused(
    store: TaskStore, bus: TaskBus
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    task = await _submit(store, None, owner)
    async with serving(store, bus) as stub:
        request = tasks_pb2.CancelOwnerTasksRequest(owner_id=owner)
        assert await _code(stub.CancelOwnerTasks(request, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
        assert await _code(stub.CancelOwnerTasks(request, metadata=testing.metadata(owner),
                                                 timeout=5)) == grpc.StatusCode.PERMISSION_DENIED
        forged = (("x-sutazai-user-id", "admin-1"), ("x-sutazai-roles", "admin"))
        refused = await _code(stub.CancelOwnerTasks(request, metadata=forged, timeout=5))
        assert refused == grpc.StatusCode.UNAUTHENTICATED
        for bad in ("", " ", "x" * 129):
            code = await _code(stub.CancelOwnerTasks(tasks_pb2.CancelOwnerTasksRequest(owner_id=bad),
                                                     metadata=testing.metadata("admin-1", admin=True), timeout=5))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert (await store.get(task.id)).status == "queued"  # type: ignore[union-attr]  # refused calls changed nothing
