"""Health and status routes. None needs a credential; ``/health`` and ``/health-emergency`` never
wait on a dependency."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from sutazai_gateway import __version__
from sutazai_gateway.api.deps import AdminUser, GatewayState, StateDep, call_metadata
from sutazai_gateway.breakers import list_all, reset_remote
from sutazai_gateway.health_tracker import SERVICES, alerts_and_recommendations, overall_status
from sutazai_gateway.problems import problem_responses
from sutazai_gateway.system_sample import SAMPLER

router = APIRouter(tags=["health"])


def _now() -> str:
    return datetime.now(UTC).isoformat()


@router.get("/health-emergency")
async def health_emergency() -> dict[str, str]:
    return {"status": "ok", "message": "the gateway process is answering", "timestamp": _now()}


@router.get("/health")
async def health(state: StateDep) -> dict[str, object]:
    """The last background round's picture; this call itself contacts nothing."""
    statuses = state.monitor.tracker.statuses()
    return {
        "status": overall_status(statuses) if state.monitor.last_round_at else "starting",
        "timestamp": _now(),
        "services": statuses,
        "performance": {
            "uptime_s": round(time.monotonic() - state.started_monotonic, 3),
            "last_check": state.monitor.last_round_at.isoformat() if state.monitor.last_round_at else None,
            "last_check_duration_ms": state.monitor.last_round_ms,
        },
    }


@router.get("/api/v1/health/detailed")
async def health_detailed(state: StateDep) -> dict[str, object]:
    """Every service and dependency, checked now (each bounded by the probe timeout), or at most
    ``SUTAZAI_GATEWAY_HEALTH_MIN_INTERVAL_S`` ago: one round runs at a time, callers share it."""
    await state.monitor.fresh()
    components = state.monitor.tracker.components
    statuses = {name: c.status for name, c in components.items()}
    alerts, recommendations = alerts_and_recommendations(components)
    return {
        "overall_status": overall_status(statuses),
        "timestamp": _now(),
        "services": {name: c.as_dict(circuit_breaker_state=_breaker_state(state, name))
                     for name, c in components.items()},
        "system_resources": _system_resources(),
        "alerts": alerts,
        "recommendations": recommendations,
        "summary": {
            "services_healthy": sum(1 for n in SERVICES if statuses.get(n) == "healthy"),
            "services_total": len(SERVICES),
        },
    }


@router.get("/api/v1/status")
async def status(state: StateDep) -> dict[str, object]:
    statuses = state.monitor.tracker.statuses()
    overall = overall_status(statuses) if state.monitor.last_round_at else "starting"
    sample = SAMPLER.sample()
    return {
        "status": "operational" if overall == "healthy" else overall,
        "cpu_percent": sample.cpu,
        "memory_percent": sample.memory,
        "version": __version__,
    }


def _system_resources() -> dict[str, float]:
    sample = SAMPLER.sample()
    return {"cpu": sample.cpu, "memory": sample.memory, "disk": sample.disk}


def _breaker_state(state: GatewayState, name: str) -> str | None:
    """The gateway's breaker for an upstream service; None for the gateway itself and the dependencies."""
    try:
        return state.upstreams[name].breaker.state
    except KeyError:
        return None


@router.get("/api/v1/health/circuit-breakers", responses=problem_responses(401, 403))
async def circuit_breakers(admin: AdminUser, state: StateDep) -> dict[str, object]:
    """Every breaker: the gateway's (one per upstream service, by its name) and each service instance's (chat's
    model backends, the upstreams a service calls: ``<instance id>/<name>``), each with the original's fields,
    plus the rolling window's failure rate, calls in flight, ejected instances and the next probe time. An
    instance that does not answer within the health checks' deadline is listed under ``unreachable``."""
    listing = await list_all(state.upstreams, call_metadata(admin), state.settings.probe_timeout_s)
    breakers = listing.breakers
    open_count = sum(1 for b in breakers.values() if b["state"] == "open")
    return {
        "timestamp": _now(), "circuit_breakers": breakers, "total_breakers": len(breakers),
        "healthy_breakers": sum(1 for b in breakers.values() if b["state"] == "closed"),
        "open_breakers": open_count,
        "unreachable": listing.unreachable,
        # Each gateway process keeps its own breakers: these are the numbers of the process that answered.
        "process": os.getpid(),
    }


@router.post("/api/v1/health/circuit-breakers/reset", responses=problem_responses(401, 403, 404, 422, 503))
async def reset_circuit_breakers(
    admin: AdminUser, state: StateDep,
    name: Annotated[str | None, Query(max_length=200, description=(
        "one breaker: a gateway upstream (agents) or an instance's (chat-1/chat-backend:local); all when omitted"
    ))] = None,
) -> dict[str, object]:
    """Closes the gateway's breakers (every process on this port, over NATS) and every service instance's, or
    the one named."""
    metadata = call_metadata(admin)
    timeout_s = state.settings.probe_timeout_s
    if name is not None:
        try:
            upstream = state.upstreams[name]
        except KeyError:
            upstream = None
        if upstream is not None:
            upstream.breaker.reset()
            if state.announce_breaker_reset is not None:
                await state.announce_breaker_reset(name)
            return {"message": f"the circuit breaker for {name} is closed", "timestamp": _now(),
                    "status": "success", "reset": [name]}
        try:
            done, failed = await reset_remote(state.upstreams, metadata, timeout_s, name)
        except KeyError:
            raise HTTPException(404, f"no circuit breaker is called {name!r}") from None
        if failed:
            raise HTTPException(503, f"{name}: the instance did not answer ({next(iter(failed.values()))})",
                                headers={"Retry-After": "1"})
        return {"message": f"the circuit breaker {name} is closed", "timestamp": _now(), "status": "success",
                "reset": done}
    for upstream in state.upstreams:
        upstream.breaker.reset()
    if state.announce_breaker_reset is not None:
        await state.announce_breaker_reset()
    done, failed = await reset_remote(state.upstreams, metadata, timeout_s)
    return {"message": "every circuit breaker is closed" if not failed else
            "every reachable circuit breaker is closed", "timestamp": _now(),
            "status": "success" if not failed else "partial",
            "reset": [u.name for u in state.upstreams] + done, "unreachable": failed}
