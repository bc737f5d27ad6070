"""Health bookkeeping for every component the gateway watches: pure logic, no I/O.

A component is a service (gateway, agents, ...) or a dependency (postgres, redis, nats,
model_server). Each check result is recorded here; the tracker keeps what the original's detailed
health reported: last check, last success and failure, consecutive failures, uptime percentage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Status = Literal["healthy", "unhealthy", "unknown"]
Overall = Literal["healthy", "degraded", "critical"]

SERVICES = ("gateway", "agents", "tasks", "mesh", "chat", "memory")
DEPENDENCIES = ("postgres", "redis", "nats", "model_server")
# Without these nothing useful works: their loss makes the platform critical, not degraded.
CRITICAL = frozenset({"gateway", "postgres"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    response_time_ms: float | None
    error: str | None = None
    instances: tuple[dict[str, object], ...] | None = None  # a service's instances, each with its state


@dataclass(slots=True)
class ComponentState:
    name: str
    status: Status = "unknown"
    response_time_ms: float | None = None
    last_check: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    error_message: str | None = None
    consecutive_failures: int = 0
    checks: int = 0
    successes: int = 0
    instances: tuple[dict[str, object], ...] | None = None

    @property
    def uptime_percentage(self) -> float:
        return round(100.0 * self.successes / self.checks, 2) if self.checks else 0.0

    def as_dict(self, circuit_breaker_state: str | None) -> dict[str, object]:
        return {
            "status": self.status,
            "response_time_ms": self.response_time_ms,
            "last_check": _iso(self.last_check),
            "last_success": _iso(self.last_success),
            "last_failure": _iso(self.last_failure),
            "error_message": self.error_message,
            "consecutive_failures": self.consecutive_failures,
            "circuit_breaker_state": circuit_breaker_state,
            "uptime_percentage": self.uptime_percentage,
            **({"instances": list(self.instances)} if self.instances is not None else {}),
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


@dataclass
class HealthTracker:
    components: dict[str, ComponentState] = field(
        default_factory=lambda: {n: ComponentState(n) for n in (*SERVICES, *DEPENDENCIES)}
    )

    def record(self, result: CheckResult, at: datetime | None = None) -> ComponentState:
        at = at or datetime.now(UTC)
        state = self.components.setdefault(result.name, ComponentState(result.name))
        state.status = result.status
        state.response_time_ms = result.response_time_ms
        state.last_check = at
        state.error_message = result.error
        if result.instances is not None:
            state.instances = result.instances
        if result.status == "unknown":
            return state  # not checked this round (its reporter is down): no success, no failure
        state.checks += 1
        if result.status == "healthy":
            state.successes += 1
            state.last_success = at
            state.consecutive_failures = 0
        else:
            state.last_failure = at
            state.consecutive_failures += 1
        return state

    def statuses(self) -> dict[str, Status]:
        return {name: state.status for name, state in self.components.items()}


def overall_status(statuses: dict[str, Status]) -> Overall:
    down = {n for n, s in statuses.items() if s != "healthy"}
    if down & CRITICAL:
        return "critical"
    services_down = [n for n in SERVICES if n in down]
    if len(services_down) * 2 >= len(SERVICES):
        return "critical"
    return "degraded" if down else "healthy"


def alerts_and_recommendations(states: dict[str, ComponentState]) -> tuple[list[dict[str, str]], list[str]]:
    alerts: list[dict[str, str]] = []
    recommendations: list[str] = []
    for name, state in states.items():
        if state.status == "healthy":
            continue
        severity = "critical" if name in CRITICAL else "warning"
        alerts.append(
            {"component": name, "severity": severity, "message": state.error_message or f"{name} is {state.status}"}
        )
        if name in SERVICES:
            recommendations.append(
                f"Start the {name} service (python -m sutazai_{name}) or read its log in .sutazai/logs/{name}.log"
            )
        elif name == "model_server":
            recommendations.append("Check that the model server answers at the chat service's SUTAZAI_MODEL_URL")
        else:
            recommendations.append(f"Check that {name} is running and reachable at its configured URL")
    return alerts, recommendations
