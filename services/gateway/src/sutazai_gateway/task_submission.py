"""``POST /api/v1/tasks`` for concurrent callers: one ``CreateTasks`` call per burst of one user's submissions.

Each request still gets its own task and answer. While a user's call is in flight, that user's next submissions
wait for it and then go together (``sutazai_runtime.coalesce``: no timer, so a lone request goes at once). Under
load this replaces N gRPC calls, each costing the gateway and the tasks service their per-call overhead, by a
few (measured with bench/tasks_throughput.py, see bench/README.md).

``CreateTasks`` is all or none. When a batch is refused for one item (a client error: an invalid field, an
unknown agent, an idempotency conflict), nothing of it was created, and each submission is sent again alone, so
each gets its own answer. Any other failure (the tasks service unavailable, a deadline) fails every request of
the batch, as it would have failed each of them alone.

A request whose trace is recorded goes alone: its ``CreateTask`` span is its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime import telemetry
from sutazai_runtime.coalesce import Coalescer, Failed
from sutazai_runtime.identity import Identity

from sutazai_gateway.upstreams import Upstreams

# Refusals that concern one item of a batch: the batch is retried item by item.
_ITEM_REFUSALS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                            grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION,
                            grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OUT_OF_RANGE})
MAX_BATCH = 100  # the tasks service takes up to 1,000 per call; 100 keeps one reply small
PRUNE_AT = 256  # identities with a coalescer before the idle ones are dropped


class TaskSubmitter:
    def __init__(self, upstreams: Upstreams, *, max_batch: int = MAX_BATCH) -> None:
        self._upstreams = upstreams
        self._max_batch = max_batch
        # One per identity proof in use (a user's proof is reused for half its life); dropped when idle.
        self._batches: dict[str, Coalescer[tasks_pb2.CreateTaskRequest, tasks_pb2.Task]] = {}

    def _stub(self) -> tasks_pb2_grpc.TaskServiceStub:
        return self._upstreams["tasks"].stub(tasks_pb2_grpc.TaskServiceStub)

    async def create(self, request: tasks_pb2.CreateTaskRequest, identity: Identity, metadata: Any
                     ) -> tasks_pb2.Task:
        """The created (or, for a repeated idempotency key, existing) task; gRPC errors as ``CreateTask``'s."""
        if telemetry.TRACER is not None and telemetry.pass_on() is None:  # a recorded trace: its own call
            return await self._stub().CreateTask(request, metadata=metadata)
        key = identity.proof or identity.user_id
        batch = self._batches.get(key)
        if batch is None:
            if len(self._batches) >= PRUNE_AT:  # a batch that ended after its last caller returned stays behind
                self._batches = {k: b for k, b in self._batches.items() if not b.idle}
            batch = self._batches[key] = Coalescer(lambda items: self._send(items, metadata), self._max_batch)
        try:
            return await batch.submit(request)
        finally:
            if batch.idle and self._batches.get(key) is batch:
                del self._batches[key]

    async def _send(self, requests: Sequence[tasks_pb2.CreateTaskRequest], metadata: Any) -> list[Any]:
        stub = self._stub()
        if len(requests) == 1:
            return [await stub.CreateTask(requests[0], metadata=metadata)]
        try:
            reply = await stub.CreateTasks(tasks_pb2.CreateTasksRequest(tasks=requests), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _ITEM_REFUSALS:
                raise
            return await asyncio.gather(*(self._alone(stub, r, metadata) for r in requests))
        return list(reply.tasks)

    @staticmethod
    async def _alone(stub: tasks_pb2_grpc.TaskServiceStub, request: tasks_pb2.CreateTaskRequest,
                     metadata: Any) -> Any:
        try:
            return await stub.CreateTask(request, metadata=metadata)
        except Exception as exc:
            return Failed(exc)
