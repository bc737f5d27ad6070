"""One round of health checks: every upstream service over gRPC health, the gateway's own
dependencies with the shared probes, and the model server as the chat service sees it."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2
from sutazai.common.v1 import common_pb2
from sutazai_runtime.probes import Probe, run_probes

from sutazai_gateway.health_tracker import CheckResult
from sutazai_gateway.upstreams import Upstream, Upstreams

_SERVING = health_pb2.HealthCheckResponse.SERVING


async def check_service(upstream: Upstream, timeout_s: float) -> CheckResult:
    start = time.perf_counter()
    try:
        reply = await upstream.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return CheckResult(upstream.name, "unhealthy", round(elapsed, 3), f"{exc.code().name}: {exc.details()}")
    elapsed = round((time.perf_counter() - start) * 1000, 3)
    if reply.status == _SERVING:
        return CheckResult(upstream.name, "healthy", elapsed)
    reason = await _why_not_serving(upstream, timeout_s)
    return CheckResult(upstream.name, "unhealthy", elapsed, f"not serving: {reason}")


async def _why_not_serving(upstream: Upstream, timeout_s: float) -> str:
    try:
        diag = await upstream.diagnostics.GetDependencies(common_pb2.GetDependenciesRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    down = [f"{d.name} ({d.error})" for d in diag.dependencies if not d.healthy]
    return ", ".join(down) or "starting or stopping"


async def check_model_server(chat: Upstream, timeout_s: float) -> CheckResult:
    """The model server as the chat service last probed it; unknown while chat cannot be asked."""
    try:
        diag = await chat.diagnostics.GetDependencies(common_pb2.GetDependenciesRequest(), timeout=timeout_s)
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
