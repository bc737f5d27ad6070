"""One round of health checks: every upstream service over gRPC health, the gateway's own
dependencies with the shared probes, and the model server as the chat service sees it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sutazai.common.v1 import common_pb2, common_pb2_grpc
from sutazai_runtime.probes import Probe, run_probes

from sutazai_gateway.health_tracker import CheckResult
from sutazai_gateway.upstreams import Upstream, Upstreams

_SERVING = health_pb2.HealthCheckResponse.SERVING


async def _check_instance(instance_id: str, stub: health_pb2_grpc.HealthStub, timeout_s: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        return {"id": instance_id, "status": "unhealthy", "error": f"{exc.code().name}: {exc.details()}",
                "response_time_ms": round((time.perf_counter() - start) * 1000, 3)}
    status = "healthy" if reply.status == _SERVING else "unhealthy"
    return {"id": instance_id, "status": status, "error": None if status == "healthy" else "not serving",
            "response_time_ms": round((time.perf_counter() - start) * 1000, 3)}


async def check_service(upstream: Upstream, timeout_s: float) -> CheckResult:
    """Every instance of the service (from the registry) over gRPC health, directly (no breaker). The service
    is healthy while at least one instance serves; each instance is listed with its own state."""
    stubs = upstream.plain_stubs(health_pb2_grpc.HealthStub)
    if not stubs:
        return CheckResult(upstream.name, "unhealthy", None, "no instance is registered", ())
    checked = await asyncio.gather(*(_check_instance(i, stub, timeout_s) for i, stub in stubs))
    balancer = {i["id"]: i for i in upstream.instances()}
    instances = tuple({**c, **{k: v for k, v in balancer.get(c["id"], {}).items() if k != "id"}} for c in checked)
    healthy = [c for c in checked if c["status"] == "healthy"]
    fastest = min((c["response_time_ms"] for c in healthy), default=None)
    if healthy:
        down = [c["id"] for c in checked if c["status"] != "healthy"]
        return CheckResult(upstream.name, "healthy", fastest, f"instances down: {', '.join(down)}" if down else None,
                           instances)
    elapsed = min(c["response_time_ms"] for c in checked)
    reason = await _why_not_serving(upstream, timeout_s)
    return CheckResult(upstream.name, "unhealthy", elapsed, f"not serving: {reason}", instances)


async def _why_not_serving(upstream: Upstream, timeout_s: float) -> str:
    stubs = upstream.plain_stubs(common_pb2_grpc.DiagnosticsStub)
    if not stubs:
        return "no instance"
    try:
        diag = await stubs[0][1].GetDependencies(common_pb2.GetDependenciesRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    down = [f"{d.name} ({d.error})" for d in diag.dependencies if not d.healthy]
    return ", ".join(down) or "starting or stopping"


async def check_model_server(chat: Upstream, timeout_s: float) -> CheckResult:
    """The model server as the chat service last probed it; unknown while chat cannot be asked."""
    stubs = chat.plain_stubs(common_pb2_grpc.DiagnosticsStub)
    if not stubs:
        return CheckResult("model_server", "unknown", None, "no chat instance is registered")
    try:
        diag = await stubs[0][1].GetDependencies(common_pb2.GetDependenciesRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        return CheckResult("model_server", "unknown", None, f"chat service unreachable ({exc.code().name})")
    for dep in diag.dependencies:
        if dep.name == "model_server":
            status = "healthy" if dep.healthy else "unhealthy"
            return CheckResult("model_server", status, round(dep.latency_ms, 3), dep.error or None)
    return CheckResult("model_server", "unknown", None, "chat service has not probed the model server yet")


async def check_all(upstreams: Upstreams, own_probes: list[Probe], timeout_s: float) -> list[CheckResult]:
    services = [check_service(u, timeout_s) for u in upstreams]
    model = check_model_server(upstreams["chat"], timeout_s)
    own = run_probes(own_probes, timeout_s)
    service_results, model_result, probe_results = await asyncio.gather(
        asyncio.gather(*services), model, own
    )
    deps = [
        CheckResult(r.name, "healthy" if r.healthy else "unhealthy", r.latency_ms, r.error or None)
        for r in probe_results
    ]
    gateway = CheckResult("gateway", "healthy", 0.0)  # answering this request is the proof
    return [gateway, *service_results, model_result, *deps]
