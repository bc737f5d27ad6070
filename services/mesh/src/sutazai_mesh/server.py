"""gRPC servicer of the mesh: registry reads and writes, resolution, enqueue to a named service."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sutazai.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.discovery import Instance
from sutazai_runtime.identity import require_admin, require_identity
from sutazai_runtime.resilience.upstream import Upstream

from sutazai_mesh.catalog import HEALTHY, Catalog

SERVICE = mesh_pb2.DESCRIPTOR.services_by_name["MeshService"]
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_STATUS = {
    tasks_pb2.TASK_STATUS_QUEUED: "pending", tasks_pb2.TASK_STATUS_RUNNING: "processing",
    tasks_pb2.TASK_STATUS_COMPLETED: "completed", tasks_pb2.TASK_STATUS_FAILED: "failed",
    tasks_pb2.TASK_STATUS_CANCELLED: "cancelled", tasks_pb2.TASK_STATUS_DEAD: "failed",
}
MESH_TASK_TYPE = "mesh"


def _message(instance: Instance, state: str) -> mesh_pb2.ServiceInstance:
    message = mesh_pb2.ServiceInstance(
        id=instance.id, name=instance.name, address=instance.address, port=instance.port, tags=list(instance.tags),
        metadata={**instance.metadata, **({"external": "true"} if instance.external else {})}, state=state,
    )
    if "registered_at" in instance.metadata:
        stamp = Timestamp()
        stamp.FromSeconds(int(float(instance.metadata["registered_at"])))
        message.registered_at.CopyFrom(stamp)
    return message


class MeshServicer(mesh_pb2_grpc.MeshServiceServicer):
    def __init__(self, catalog: Catalog, tasks: Upstream) -> None:
        self._catalog = catalog
        self._tasks = tasks.stub(tasks_pb2_grpc.TaskServiceStub)

    async def Register(self, request: mesh_pb2.RegisterRequest, context: grpc.aio.ServicerContext
                       ) -> mesh_pb2.RegisterResponse:
        await require_admin(context)
        given = request.instance
        if not _ID.match(given.id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "service_id: 1-100 letters, digits, '_', '.', '-'")
        name = given.name or given.id
        if not _ID.match(name):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "service_name: 1-100 letters, digits, '_', '.', '-'")
        if not given.address or len(given.address) > 253 or not 0 < given.port < 65536:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "address and port (1-65535) are required")
        current = self._catalog.registry.view.find(given.id)
        if current is not None and not current.external:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{given.id!r} is one of the platform's instances")
        instance = Instance(
            id=given.id, name=name, address=given.address, port=given.port, tags=tuple(given.tags)[:50],
            metadata={**dict(given.metadata), "registered_at": str(time.time())}, external=True,
        )
        await self._catalog.registry.register_external(instance)  # type: ignore[attr-defined]
        return mesh_pb2.RegisterResponse(instance=_message(instance, "unknown"))

    async def Deregister(self, request: mesh_pb2.DeregisterRequest, context: grpc.aio.ServicerContext
                         ) -> mesh_pb2.DeregisterResponse:
        await require_admin(context)
        current = self._catalog.registry.view.find(request.id)
        if current is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no service instance {request.id!r}")
        if not current.external:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"{request.id!r} is one of the platform's instances: stop it instead")
        return mesh_pb2.DeregisterResponse(deregistered=await self._catalog.registry.deregister(request.id))

    async def ListServices(self, request: mesh_pb2.ListServicesRequest, context: grpc.aio.ServicerContext
                           ) -> mesh_pb2.ListServicesResponse:
        return mesh_pb2.ListServicesResponse(instances=[
            _message(i, self._catalog.state(i)) for i in self._catalog.instances(request.name)
        ])

    async def Resolve(self, request: mesh_pb2.ResolveRequest, context: grpc.aio.ServicerContext
                      ) -> mesh_pb2.ResolveResponse:
        try:
            found = self._catalog.resolve(request.name, request.strategy, request.client_key)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if found is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"no healthy instance of {request.name!r}",
                                trailing_metadata=(("sutazai-error", "no_instance"),))
        return mesh_pb2.ResolveResponse(instance=_message(found, self._catalog.state(found)))

    async def Enqueue(self, request: mesh_pb2.EnqueueRequest, context: grpc.aio.ServicerContext) -> mesh_pb2.MeshTask:
        """A durable task (the tasks service's machinery: retries with back-off, dead letters) whose worker POSTs
        ``{task_id, payload, priority}`` to ``/process`` of an instance of ``task_type``."""
        if not _ID.match(request.task_type):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "task_type: the name of a registered service")
        if not self._catalog.instances(request.task_type):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no service {request.task_type!r} is registered")
        try:
            payload = json.loads(request.payload_json) if request.payload_json else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "payload_json: a JSON object")
        # the payload travels as the client sent it (JSON text end to end: no float for a big integer)
        payload_json = json.dumps({"service": request.task_type, "payload": payload}, ensure_ascii=False,
                                  separators=(",", ":")).encode()
        metadata = (await require_identity(context)).to_metadata()
        try:
            task = await self._tasks.CreateTask(
                tasks_pb2.CreateTaskRequest(task_type=MESH_TASK_TYPE, payload_json=payload_json,
                                            priority=request.priority, max_attempts=4),
                metadata=metadata, timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "the tasks service failed")
        return _task(task)

    async def GetMeshTask(self, request: mesh_pb2.GetMeshTaskRequest, context: grpc.aio.ServicerContext
                          ) -> mesh_pb2.MeshTask:
        metadata = (await require_identity(context)).to_metadata()
        try:
            task = await self._tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=request.task_id), metadata=metadata,
                                             timeout=5)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "the tasks service failed")
        if task.task_type != MESH_TASK_TYPE:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no mesh task {request.task_id!r}")
        return _task(task)

    async def GetMeshHealth(self, request: mesh_pb2.GetMeshHealthRequest, context: grpc.aio.ServicerContext
                            ) -> mesh_pb2.GetMeshHealthResponse:
        services: dict[str, mesh_pb2.ServiceHealth] = {}
        for instance in self._catalog.instances():
            state = self._catalog.state(instance)
            health = services.setdefault(instance.name, mesh_pb2.ServiceHealth())
            health.instances.append(_message(instance, state))
            health.total += 1
            health.healthy += state == HEALTHY
        healthy = sum(1 for h in services.values() if h.healthy)
        status = "healthy" if services and healthy == len(services) else ("degraded" if healthy else "unhealthy")
        response = mesh_pb2.GetMeshHealthResponse(status=status)
        for name, health in services.items():
            response.services[name].CopyFrom(health)
        return response


def _task(task: tasks_pb2.Task) -> mesh_pb2.MeshTask:
    message = mesh_pb2.MeshTask(task_id=task.task_id, status=_STATUS.get(task.status, "pending"))
    result: Any = json.loads(task.result_json) if task.result_json else None
    if isinstance(result, dict):
        message.status_code = int(result.get("status_code", 0))
        message.headers.update({str(k): str(v) for k, v in (result.get("headers") or {}).items()})
        if "body" in result:
            message.body_json = json.dumps(result["body"], ensure_ascii=False, separators=(",", ":")).encode()
        message.instance_id = str(result.get("instance_id", ""))
        message.trace_id = str(result.get("trace_id", ""))
        message.duration = float(result.get("duration", 0.0))
    return message
