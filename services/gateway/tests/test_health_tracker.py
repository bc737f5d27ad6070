from datetime import UTC, datetime, timedelta

from sutazai_gateway.health_tracker import (
    CheckResult,
    HealthTracker,
    alerts_and_recommendations,
    overall_status,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _all_healthy() -> dict[str, str]:
    return {name: "healthy" for name in HealthTracker().components}


def test_tracker_counts_successes_failures_and_uptime() -> None:
    tracker = HealthTracker()
    tracker.record(CheckResult("agents", "healthy", 2.0), T0)
    tracker.record(CheckResult("agents", "unhealthy", 1.0, "UNAVAILABLE"), T0 + timedelta(seconds=1))
    state = tracker.record(CheckResult("agents", "unhealthy", 1.0, "UNAVAILABLE"), T0 + timedelta(seconds=2))
    assert state.consecutive_failures == 2
    assert state.last_success == T0
    assert state.last_failure == T0 + timedelta(seconds=2)
    assert state.uptime_percentage == 33.33
    assert state.as_dict(None)["error_message"] == "UNAVAILABLE"
    state = tracker.record(CheckResult("agents", "healthy", 2.0), T0 + timedelta(seconds=3))
    assert state.consecutive_failures == 0
    assert state.error_message is None


def test_unknown_is_neither_success_nor_failure() -> None:
    tracker = HealthTracker()
    state = tracker.record(CheckResult("model_server", "unknown", None, "chat unreachable"), T0)
    assert (state.checks, state.consecutive_failures, state.last_failure) == (0, 0, None)
    assert state.status == "unknown"


def test_overall_status_rules() -> None:
    statuses = _all_healthy()
    assert overall_status(statuses) == "healthy"
    assert overall_status({**statuses, "mesh": "unhealthy"}) == "degraded"
    assert overall_status({**statuses, "model_server": "unknown"}) == "degraded"
    assert overall_status({**statuses, "postgres": "unhealthy"}) == "critical"
    half_down = {**statuses, "agents": "unhealthy", "tasks": "unhealthy", "mesh": "unhealthy"}
    assert overall_status(half_down) == "critical"


def test_every_unhealthy_component_gets_an_alert_and_a_recommendation() -> None:
    tracker = HealthTracker()
    for name in tracker.components:
        tracker.record(CheckResult(name, "healthy", 1.0), T0)
    tracker.record(CheckResult("tasks", "unhealthy", 1.0, "UNAVAILABLE: refused"), T0)
    tracker.record(CheckResult("postgres", "unhealthy", 1.0, "timeout"), T0)
    alerts, recommendations = alerts_and_recommendations(tracker.components)
    assert {(a["component"], a["severity"]) for a in alerts} == {("tasks", "warning"), ("postgres", "critical")}
    assert any("sutazai_tasks" in r for r in recommendations)
    assert len(recommendations) == 2
