"""``GET /api/v1/performance/metrics`` (admin): the platform's numbers in one JSON document.

Request rate and p50/p95/p99 per route over the last minute (every gateway process together), the gateway's
calls to each upstream, its breakers (the answering process's), the chat response cache's hit ratio, the task
queue's depth (sampled by the tasks service), each service's RPC latencies, CPU and memory. Prometheus (each
service's metrics port, the gateway's on ``SUTAZAI_GATEWAY_METRICS_PORT``) has the same series for graphs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sutazai_gateway.api.deps import AdminUser, StateDep
from sutazai_gateway.performance import build_report
from sutazai_gateway.problems import problem_responses
from sutazai_gateway.system_sample import SAMPLER

router = APIRouter(tags=["performance"])


@router.get("/api/v1/performance/metrics", responses=problem_responses(401, 403))
async def performance_metrics(_: AdminUser, state: StateDep, request: Request) -> dict[str, Any]:
    sample = SAMPLER.sample()
    return await build_report(
        request.app.state.gateway_metrics, request.app.state.metrics_window, state.upstreams,
        timeout_s=state.settings.probe_timeout_s * 2,
        system={"cpu_percent": sample.cpu, "memory_percent": sample.memory, "disk_percent": sample.disk},
    )
