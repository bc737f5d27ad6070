"""The whole platform as separate processes, started the way ``make run`` starts it, on free ports,
against the PostgreSQL, Redis and NATS servers this machine runs. Tests run in file order: the
fault tests come last because they take services down."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, alive, run_stack, wait_until

pytestmark = pytest.mark.system

COMPONENTS = {"gateway", "agents", "tasks", "mesh", "chat", "memory", "postgres", "redis", "nats", "model_server"}
SERVICE_FIELDS = {
    "status", "response_time_ms", "last_check", "last_success", "last_failure", "error_message",
    "consecutive_failures", "circuit_breaker_state", "uptime_percentage",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("stack"), stack_servers) as running:
        yield running
    # After Ctrl-C (SIGTERM) the stack leaves nothing behind.
    assert running.process.returncode == 0, running.log()
    assert not [pid for pid in running.child_pids() if alive(pid)]


def test_detailed_health_lists_every_service_and_dependency_healthy(stack: RunningStack) -> None:
    health = wait_until(lambda: (h := stack.detailed_health())["overall_status"] == "healthy" and h, 15)
    assert health, stack.detailed_health()
    assert set(health["services"]) == COMPONENTS
    for name, component in health["services"].items():
        assert set(component) >= SERVICE_FIELDS, name
        assert component["status"] == "healthy", (name, component)
        assert component["response_time_ms"] is not None and component["response_time_ms"] >= 0
        assert component["consecutive_failures"] == 0
    assert set(health["system_resources"]) == {"cpu", "memory", "disk"}
    assert health["alerts"] == [] and health["recommendations"] == []
    infra = stack.state["infra"]
    # The stack runs on the session's servers (passed as URLs); the model server is its own.
    assert {n: infra[n]["origin"] for n in ("postgres", "redis", "nats")} == dict.fromkeys(
        ("postgres", "redis", "nats"), "configured")
    assert infra["model_server"]["origin"] == "embedded"


def test_root_status_and_docs_answer_in_the_original_shapes(stack: RunningStack) -> None:
    root = httpx.get(stack.url + "/").json()
    assert {"message", "version", "status", "features"} <= set(root)
    status = httpx.get(stack.url + "/api/v1/status").json()
    assert status["status"] == "operational"
    assert 0 <= status["cpu_percent"] <= 100 and 0 < status["memory_percent"] <= 100
    emergency = httpx.get(stack.url + "/health-emergency").json()
    assert set(emergency) == {"status", "message", "timestamp"}
    assert httpx.get(stack.url + "/docs").status_code == 200
    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    assert {"/", "/health", "/health-emergency", "/api/v1/health/detailed", "/api/v1/status"} <= set(paths)


def test_bad_requests_get_problem_responses(stack: RunningStack) -> None:
    missing = httpx.get(stack.url + "/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    too_big = httpx.post(stack.url + "/api/v1/status", content=b"x" * (2 * 1024 * 1024))
    assert too_big.status_code == 413


def test_every_service_answers_grpc_health_and_reflection(stack: RunningStack) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for name in ("agents", "tasks", "mesh", "chat", "memory"):
        with grpc.insecure_channel(f"127.0.0.1:{stack.state['services'][name]['port']}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        metrics = httpx.get(f"http://127.0.0.1:{stack.state['services'][name]['metrics_port']}/metrics")
        assert 'sutazai_dependency_up{dependency=' in metrics.text, name


def test_a_killed_service_shows_unhealthy_within_5s_while_health_answers(stack: RunningStack) -> None:
    os.kill(stack.pid("tasks"), signal.SIGKILL)
    killed_at = time.monotonic()

    def tasks_down() -> bool:
        assert httpx.get(stack.url + "/").status_code == 200
        assert httpx.get(stack.url + "/health").status_code == 200
        assert httpx.get(stack.url + "/health-emergency").status_code == 200
        return bool(stack.detailed_health()["services"]["tasks"]["status"] == "unhealthy")

    assert wait_until(tasks_down, 5.0, interval_s=0.2), stack.detailed_health()["services"]["tasks"]
    assert time.monotonic() - killed_at <= 5.0
    health = stack.detailed_health()
    assert health["overall_status"] == "degraded"
    assert health["services"]["tasks"]["error_message"].startswith("UNAVAILABLE")
    assert [a["component"] for a in health["alerts"]] == ["tasks"]
    # /health answers from the background monitor's last round, which sees it within its interval (2 s).
    assert wait_until(lambda: httpx.get(stack.url + "/health").json()["services"]["tasks"] == "unhealthy", 5.0)


def test_the_breaker_of_a_dead_service_opens_and_then_answers_503_at_once(stack: RunningStack) -> None:
    headers = stack.admin_headers
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as client:
        client.post("/api/v1/health/circuit-breakers/reset").raise_for_status()
        for _ in range(5):  # tasks was SIGKILLed above: each call fails and counts
            assert client.get("/api/v1/tasks").status_code == 503
        refused = client.get("/api/v1/tasks")
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 1
        breakers = client.get("/api/v1/health/circuit-breakers").json()
        listed = breakers["circuit_breakers"]
        assert listed["tasks"]["state"] == "open"
        assert listed["tasks"]["rejected_requests"] >= 1
        assert {n for n, b in listed.items() if b["owner"] == "gateway"} == {"agents", "tasks", "mesh", "chat",
                                                                             "memory"}
        assert [n for n, b in listed.items() if b["state"] == "open"] == ["tasks"]
        assert breakers["open_breakers"] == 1 and breakers["total_breakers"] == len(listed)
        # every instance's breakers too, read through its Diagnostics: chat's model backend, the upstreams the
        # services call (chat -> agents, agents -> chat, mesh -> tasks)
        backends = [n for n, b in listed.items() if b["kind"] == "backend"]
        assert backends and all(n.startswith("chat-1/chat-backend:") for n in backends), listed.keys()
        assert {"chat-1/agents", "agents-1/chat", "mesh-1/tasks"} <= set(listed)
        for name in (*backends, "tasks"):
            assert {"state", "failure_threshold", "recovery_timeout", "total_requests", "successful_requests",
                    "failed_requests", "rejected_requests", "consecutive_failures", "success_rate",
                    "last_failure_time", "last_success_time", "window_failure_rate", "in_flight",
                    "ejected_instances", "next_probe_time"} <= set(listed[name]), name
        assert listed["tasks"]["next_probe_time"] is not None
        one = client.post("/api/v1/health/circuit-breakers/reset", params={"name": backends[0]})
        assert one.status_code == 200 and one.json()["reset"] == [backends[0]]
        assert client.post("/api/v1/health/circuit-breakers/reset",
                           params={"name": "chat-1/no-such-breaker"}).status_code == 404
        # Each gateway process keeps its own breakers: ask the one this connection talks to.
        detailed = client.get("/api/v1/health/detailed").json()
        assert detailed["services"]["tasks"]["circuit_breaker_state"] == "open"
        assert client.get("/api/v1/agents").status_code == 200  # the other upstreams are unaffected
        # the SIGKILLed tasks-1 is "unreachable" (a reset of all would be "partial") until its registry entry
        # expires (one TTL after the kill)
        assert wait_until(lambda: not client.get("/api/v1/health/circuit-breakers").json()["unreachable"], 10)
        reset = client.post("/api/v1/health/circuit-breakers/reset").json()
        assert reset["status"] == "success" and reset["unreachable"] == {}
        assert client.get("/api/v1/health/circuit-breakers").json()["open_breakers"] == 0
    assert httpx.get(stack.url + "/api/v1/health/circuit-breakers").status_code == 401


def test_a_service_stops_within_5s_of_sigterm(stack: RunningStack) -> None:
    pid = stack.pid("memory")
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not alive(pid), 5.0, interval_s=0.05)
    assert time.monotonic() - started < 5.0
    log = Path(stack.state["services"]["memory"]["log"]).read_text()
    assert "stopped in" in log  # the graceful path (sutazai_runtime.grpc_server), not a kill


def test_a_task_worker_stops_within_5s_of_sigterm(stack: RunningStack) -> None:
    pid = stack.pid("tasks-worker-2")
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not alive(pid), 5.0, interval_s=0.05)
    assert time.monotonic() - started < 5.0
