"""One round of health checks: every upstream service over gRPC health, the gateway's own
dependencies with the shared probes, and the model server as the chat service sees it.

Every check has its own short deadline (``timeout_s``), enforced twice: as the gRPC call's deadline and as an
asyncio timeout around it, so a round never waits on a dead instance or a connection that went silent (a
frozen process keeps its TCP connection open). An instance that did not answer is not asked why; only one
that answered NOT_SERVING is asked, through Diagnostics, which of its dependencies is down. Each instance's
result also goes to its upstream's outlier detector (a failed check ejects it, a passing one ends that).
"""

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
_GRACE_S = 0.25  # the asyncio bound waits this much longer than the gRPC deadline, which normally ends it


async def _bounded(call: Any, timeout_s: float) -> Any:
    """``await call`` within the check's deadline; TimeoutError past it (the gRPC deadline normally wins)."""
    async with asyncio.timeout(timeout_s + _GRACE_S):
        return await call


async def _check_instance(instance_id: str, stub: health_pb2_grpc.HealthStub, timeout_s: float) -> dict[str, Any]:
    start = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - start) * 1000, 3)

    try:
        reply = await _bounded(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s,
                                          wait_for_ready=False), timeout_s)
    except grpc.aio.AioRpcError as exc:
        return {"id": instance_id, "status": "unhealthy", "error": f"{exc.code().name}: {exc.details()}",
                "answered": False, "response_time_ms": took()}
    except TimeoutError:
        return {"id": instance_id, "status": "unhealthy", "answered": False, "response_time_ms": took(),
                "error": f"DEADLINE_EXCEEDED: no answer within {timeout_s:g} s"}
    status = "healthy" if reply.status == _SERVING else "unhealthy"
    return {"id": instance_id, "status": status, "error": None if status == "healthy" else "not serving",
            "answered": True, "response_time_ms": took()}


async def check_service(upstream: Upstream, timeout_s: float) -> CheckResult:
    """Every instance of the service (from the registry) over gRPC health, directly (no breaker). The service
    is healthy while at least one instance serves; each instance is listed with its own state."""
    stubs = upstream.plain_stubs(health_pb2_grpc.HealthStub)
    if not stubs:
        return CheckResult(upstream.name, "unhealthy", None, "no instance is registered", ())
    checked = await asyncio.gather(*(_check_instance(i, stub, timeout_s) for i, stub in stubs))
    for c in checked:
        upstream.balanced.health_checked(c["id"], c["status"] == "healthy", c["error"] or "")
    balancer = {i["id"]: i for i in upstream.instances()}
    instances = tuple(
        {**{k: v for k, v in c.items() if k != "answered"},
         **{k: v for k, v in balancer.get(c["id"], {}).items() if k != "id"}}
        for c in checked
    )
    healthy = [c for c in checked if c["status"] == "healthy"]
    fastest = min((c["response_time_ms"] for c in healthy), default=None)
    if healthy:
        down = [c["id"] for c in checked if c["status"] != "healthy"]
        return CheckResult(upstream.name, "healthy", fastest, f"instances down: {', '.join(down)}" if down else None,
                           instances)
    elapsed = min(c["response_time_ms"] for c in checked)
    serving_not = [c["id"] for c in checked if c["answered"]]
    if serving_not:  # it answers but says NOT_SERVING: ask that instance which dependency is down
        reason = await _why_not_serving(upstream, serving_not[0], timeout_s)
        return CheckResult(upstream.name, "unhealthy", elapsed, f"not serving: {reason}", instances)
    errors = [c["error"] for c in checked]
    error = errors[0] if len(errors) == 1 else "; ".join(f"{c['id']}: {c['error']}" for c in checked)
    return CheckResult(upstream.name, "unhealthy", elapsed, error, instances)


async def _why_not_serving(upstream: Upstream, instance_id: str, timeout_s: float) -> str:
    stub = dict(upstream.plain_stubs(common_pb2_grpc.DiagnosticsStub)).get(instance_id)
    if stub is None:
        return "gone from the registry"
    try:
        diag = await _bounded(stub.GetDependencies(common_pb2.GetDependenciesRequest(), timeout=timeout_s),
                              timeout_s)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    except TimeoutError:
        return "DEADLINE_EXCEEDED"
    down = [f"{d.name} ({d.error})" for d in diag.dependencies if not d.healthy]
    return ", ".join(down) or "starting or stopping"


async def check_model_server(chat: Upstream, timeout_s: float) -> CheckResult:
    """The model server as the chat service last probed it (every chat instance is asked at once; the first
    answer counts); unknown while no chat instance can be asked."""
    stubs = chat.plain_stubs(common_pb2_grpc.DiagnosticsStub)
    if not stubs:
        return CheckResult("model_server", "unknown", None, "no chat instance is registered")
    calls = [asyncio.ensure_future(_bounded(stub.GetDependencies(common_pb2.GetDependenciesRequest(),
                                                                 timeout=timeout_s), timeout_s))
             for _, stub in stubs]
    diag = None
    failure = "no answer"
    try:
        for next_done in asyncio.as_completed(calls):
            try:
                diag = await next_done
                break
            except grpc.aio.AioRpcError as exc:
                failure = exc.code().name
            except TimeoutError:
                failure = "DEADLINE_EXCEEDED"
    finally:
        for call in calls:
            call.cancel()
    if diag is None:
        return CheckResult("model_server", "unknown", None, f"chat service unreachable ({failure})")
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
