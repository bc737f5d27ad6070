"""The service mesh over REST, in the original's shapes (``/api/v1/mesh``). Translation to
``sutazai.mesh.v1.MeshService`` only; the gateway adds what it knows itself: each of its upstreams' calls in
flight and breaker state, per instance."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field
from sutazai.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc

from sutazai_gateway.api.deps import AdminUser, CurrentUser, GatewayState, StateDep
from sutazai_gateway.api.routes.tasks import CreateTask
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors

router = PrefixedRouter(prefix="/api/v1/mesh", tags=["mesh"])

_AUTH = {401: {"description": "no credential"}}
_ADMIN = {**_AUTH, 403: {"description": "not an admin"}}
_UPSTREAM = {503: {"description": "the mesh service is unavailable (Retry-After)"},
             504: {"description": "the mesh service did not answer in time"}}
ServiceId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class RegisterService(BaseModel):
    """An external service (the original's body): it answers ``POST /process`` and ``GET /health``."""

    model_config = ConfigDict(extra="forbid")

    service_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    service_name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
                                     description="defaults to service_id")
    address: str = Field("localhost", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\-\[\]]+$")
    port: int = Field(8080, ge=1, le=65535)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Annotated[str, Field(max_length=1000)]] = Field(default_factory=dict, max_length=50)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _stub(state: GatewayState) -> mesh_pb2_grpc.MeshServiceStub:
    return state.upstreams["mesh"].stub(mesh_pb2_grpc.MeshServiceStub)


def _instance(i: mesh_pb2.ServiceInstance) -> dict[str, Any]:
    return {"id": i.id, "name": i.name, "address": i.address, "port": i.port, "tags": list(i.tags),
            "metadata": dict(i.metadata), "state": i.state}


def _gateway_view(state: GatewayState) -> dict[str, dict[str, Any]]:
    """Per instance id: the gateway's calls in flight to it and its upstream's breaker state."""
    view: dict[str, dict[str, Any]] = {}
    for upstream in state.upstreams:
        breaker = upstream.breaker.state
        for instance in upstream.instances():
            view[instance["id"]] = {"connections": instance["in_flight"], "circuit_breaker": breaker,
                                    "ejected": instance["ejected"]}
    return view


async def _list(state: GatewayState, user: Any) -> list[mesh_pb2.ServiceInstance]:
    with upstream_errors("mesh"):
        reply = await _stub(state).ListServices(mesh_pb2.ListServicesRequest(), metadata=user.to_metadata())
    return list(reply.instances)


async def _pending(state: GatewayState, user: Any) -> int:
    with upstream_errors("tasks"):
        reply = await state.upstreams["tasks"].stub(tasks_pb2_grpc.TaskServiceStub).ListTasks(
            tasks_pb2.ListTasksRequest(status=tasks_pb2.TASK_STATUS_QUEUED), metadata=user.to_metadata())
    return int(reply.page.total)


@router.get("/status", responses={**_AUTH, **_UPSTREAM})
async def mesh_status(state: StateDep, user: CurrentUser) -> dict[str, Any]:
    instances = await _list(state, user)
    names = sorted({i.name for i in instances})
    healthy = {i.name for i in instances if i.state == "healthy"}
    return {
        "status": "operational" if names and healthy == set(names) else "degraded",
        "services_count": len(names),
        "services": names,
        "queue_stats": {"pending_tasks": await _pending(state, user), "total_services": len(names),
                        "healthy_services": len(healthy)},
        "timestamp": _now(),
    }


@router.post("/v2/register", responses={**_ADMIN, **_UPSTREAM, 409: {"description": "one of the platform's own"}})
async def register(body: RegisterService, state: StateDep, admin: AdminUser) -> dict[str, Any]:
    """Admin. An external service the mesh lists, health-checks (``GET /health``) and delivers enqueued tasks to."""
    request = mesh_pb2.RegisterRequest(instance=mesh_pb2.ServiceInstance(
        id=body.service_id, name=body.service_name or body.service_id, address=body.address, port=body.port,
        tags=body.tags, metadata=body.metadata,
    ))
    with upstream_errors("mesh"):
        reply = await _stub(state).Register(request, metadata=admin.to_metadata())
    i = reply.instance
    return {
        "status": "registered",
        "service": {
            "id": i.id, "status": i.state,
            "instance": {
                "service_id": i.id, "name": i.name, "address": i.address, "port": i.port, "tags": list(i.tags),
                "check": {"http": f"http://{i.address}:{i.port}/health", "interval": "10s", "timeout": "2s",
                          "deregister_critical_service_after": "never (until DELETE)"},
            },
        },
    }


@router.delete("/v2/services/{service_id}", responses={
    **_ADMIN, **_UPSTREAM, 404: {"description": "unknown"}, 409: {"description": "one of the platform's own"}})
async def deregister(service_id: ServiceId, state: StateDep, admin: AdminUser) -> dict[str, Any]:
    """Admin. Removes an external service (the platform's own instances leave when they stop)."""
    with upstream_errors("mesh"):
        await _stub(state).Deregister(mesh_pb2.DeregisterRequest(id=service_id), metadata=admin.to_metadata())
    return {"status": "deregistered", "service_id": service_id, "timestamp": _now()}


@router.get("/v2/services", responses={**_AUTH, **_UPSTREAM})
async def services(state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """The platform's own instances (``state``: healthy while its gRPC health is SERVING) and the external ones
    (healthy while their ``/health`` answers)."""
    instances = [_instance(i) for i in await _list(state, user)]
    return {"services": instances, "count": len(instances)}


@router.post("/v2/enqueue", status_code=202, responses={
    **_AUTH, **_UPSTREAM, 400: {"description": "bad body"}, 404: {"description": "no such service"}})
async def enqueue(body: CreateTask, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """A durable task delivering ``{task_id, payload, priority}`` by ``POST /process`` to an instance of the
    service named by ``task_type``, retried with back-off on another instance when it fails."""
    payload_json = json.dumps(body.payload, ensure_ascii=False, separators=(",", ":")).encode()
    with upstream_errors("mesh"):
        task = await _stub(state).Enqueue(
            mesh_pb2.EnqueueRequest(task_type=body.task_type, payload_json=payload_json, priority=body.priority),
            metadata=user.to_metadata(),
        )
    return {"task_id": task.task_id, "status": "queued", "service": body.task_type,
            "result": {"message": f"task queued for delivery to {body.task_type}"}}


@router.get("/v2/task/{task_id}", responses={
    **_AUTH, **_UPSTREAM, 400: {"description": "not a UUID"}, 404: {"description": "unknown"}})
async def mesh_task(task_id: Annotated[str, Path(max_length=64)], state: StateDep, user: CurrentUser
                    ) -> dict[str, Any]:
    try:
        task_id = str(uuid.UUID(task_id))
    except ValueError as exc:
        raise HTTPException(400, f"{task_id!r} is not a valid task id (a UUID)") from exc
    with upstream_errors("mesh"):
        task = await _stub(state).GetMeshTask(mesh_pb2.GetMeshTaskRequest(task_id=task_id),
                                              metadata=user.to_metadata())
    result = None
    if task.status_code or task.instance_id:
        result = {"status_code": task.status_code, "headers": dict(task.headers),
                  "body": json.loads(task.body_json) if task.body_json else None,
                  "instance_id": task.instance_id, "trace_id": task.trace_id, "duration": task.duration}
    return {"task_id": task.task_id, "status": task.status, "result": result}


@router.get("/v2/health", responses={**_AUTH, **_UPSTREAM})
async def mesh_health(state: StateDep, user: CurrentUser) -> dict[str, Any]:
    with upstream_errors("mesh"):
        reply = await _stub(state).GetMeshHealth(mesh_pb2.GetMeshHealthRequest(), metadata=user.to_metadata())
    view = _gateway_view(state)
    services_out: dict[str, Any] = {}
    for name, health in reply.services.items():
        services_out[name] = {
            "instances": [
                {"id": i.id, "address": f"{i.address}:{i.port}", "state": i.state,
                 "connections": view.get(i.id, {}).get("connections", 0),
                 "circuit_breaker": view.get(i.id, {}).get("circuit_breaker", "closed"),
                 "ejected": view.get(i.id, {}).get("ejected", False)}
                for i in health.instances
            ],
            "total": health.total, "healthy": health.healthy,
        }
    return {
        "status": reply.status,
        "services": services_out,
        "queue_stats": {"pending_tasks": await _pending(state, user), "total_services": len(services_out),
                        "healthy_services": sum(1 for s in services_out.values() if s["healthy"])},
        "timestamp": _now(),
    }
