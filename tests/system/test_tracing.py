"""Traces across the platform: the stack exports over OTLP to a receiver this test runs (the official
OpenTelemetry protocol definitions, ``opentelemetry-proto``, served with grpcio), and one agent task makes one
trace with the gateway's, the tasks service's, the worker's and chat's spans, continuing the caller's
``traceparent``, whose trace id the task records."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        received = []
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}
                    received.append(ReceivedSpan(service, span.name, span.trace_id.hex(), span.span_id.hex(),
                                                 span.parent_span_id.hex(), span.kind, attributes))
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def all(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(grace=None)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers,
          receiver: tuple[Receiver, int]) -> Iterator[RunningStack]:
    _, port = receiver
    with run_stack(tmp_path_factory.mktemp("tracing"), stack_servers,
                   OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                   OTEL_BSP_SCHEDULE_DELAY="500",  # the SDK's batch delay: 0.5 s instead of 5
                   SUTAZAI_GATEWAY_API_CACHE_TTL_S="0") as running:  # repeated reads reach the upstream
        yield running


@pytest.mark.timeout(420)
def test_one_agent_task_is_one_trace_across_gateway_tasks_worker_and_chat(
    stack: RunningStack, receiver: tuple[Receiver, int],
) -> None:
    spans_of, _ = receiver
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=30) as client:
        created = client.post("/api/v1/tasks", headers={"traceparent": f"00-{trace_id}-{parent_span}-01"}, json={
            "task_type": "agent", "agent_id": "summarizer", "priority": 10,
            "payload": {"input": "The council approved a bike lane on Main Street."},
        })
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]

        def finished() -> dict[str, Any] | None:
            task = client.get(f"/api/v1/tasks/{task_id}").json()
            return task if task["status"] in ("completed", "failed", "dead") else None

        # SmolLM2 on two shared cores: minutes at worst, bounded
        task = wait_until(finished, timeout_s=300, interval_s=1.0)
    assert task and task["status"] == "completed", task
    assert task["trace_id"] == trace_id  # the incoming traceparent was continued, and the task records it

    wanted = {"sutazai-gateway", "sutazai-tasks", "sutazai-tasks-worker", "sutazai-chat"}

    def complete() -> list[Any] | None:
        # Every span asserted below, and every span between the model call and the request: each process exports
        # in batches, so an enclosing span (the worker's run, which ends last) can arrive after its children.
        found = spans_of.trace(trace_id)
        if not found or not wanted <= {s.service for s in found}:
            return None
        ids = {s.span_id: s for s in found}
        runs = [s for s in found if s.service == "sutazai-tasks-worker" and s.name == "run agent task"]
        calls = [s for s in found if s.service == "sutazai-chat" and s.name.startswith("chat ")]
        if not runs or not calls:
            return None
        span = calls[0]
        while span.parent_span_id in ids:
            span = ids[span.parent_span_id]
        return found if span.parent_span_id == parent_span else None  # the chain reaches the caller's span

    spans = wait_until(complete, timeout_s=30, interval_s=0.5)
    services = {s.service for s in spans_of.trace(trace_id)}
    assert spans, f"the trace reached only {sorted(services)}; every span received: {len(spans_of.spans)}"
    by_id = {s.span_id: s for s in spans}

    # the gateway's request span is the child of the caller's span
    request_span = next(s for s in spans if s.service == "sutazai-gateway" and s.kind == 2)  # SERVER
    assert request_span.parent_span_id == parent_span
    assert "/api/v1/tasks" in request_span.name
    # the gateway's gRPC client span -> the tasks service's server span of CreateTask
    create = next(s for s in spans if s.service == "sutazai-tasks" and s.name.endswith("TaskService/CreateTask"))
    assert by_id[create.parent_span_id].service == "sutazai-gateway"
    # the worker's span continues from the task's creation (traceparent in the NATS message headers)
    run = next(s for s in spans if s.service == "sutazai-tasks-worker" and s.name == "run agent task")
    assert run.parent_span_id == create.span_id
    assert run.attributes["sutazai.task_id"] == task_id
    # chat's server span, and its model call under it, descend from the worker's span
    model_call = next(s for s in spans if s.service == "sutazai-chat" and s.name.startswith("chat "))

    def ancestors(span: ReceivedSpan) -> list[str]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span.span_id)
        return chain

    assert run.span_id in ancestors(model_call)
    assert request_span.span_id in ancestors(model_call)


def test_a_read_the_caller_left_unsampled_makes_no_span_anywhere(
    stack: RunningStack, receiver: tuple[Receiver, int],
) -> None:
    """A caller's not-sampled traceparent is followed across the hop (no span in the gateway or the agents
    service); a sampled one right after it is recorded in both (and, exported later, bounds the wait)."""
    spans_of, _ = receiver
    left_out, recorded = secrets.token_hex(16), secrets.token_hex(16)
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=30) as client:
        for trace_id, flags in ((left_out, "00"), (recorded, "01")):
            reply = client.get("/api/v1/agents/summarizer",
                               headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"})
            assert reply.status_code == 200, reply.text
    services = wait_until(lambda: {s.service for s in spans_of.trace(recorded)} >= {"sutazai-gateway",
                                                                                      "sutazai-agents"} or None,
                          timeout_s=30, interval_s=0.5)
    assert services, f"the sampled read's spans did not all arrive: {spans_of.trace(recorded)}"
    assert spans_of.trace(left_out) == []


def test_traces_start_at_the_edge_and_the_services_start_none_of_their_own(
    stack: RunningStack, receiver: tuple[Receiver, int],
) -> None:
    """Reads without a ``traceparent``: the gateway's sampler (1 % of new traces, as shipped) records a few, and
    the agents service records a call only under a gateway span of the same trace, never a trace of its own
    (the left-out reads send it no trace context at all)."""
    spans_of, _ = receiver
    recorded = secrets.token_hex(16)
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=30) as client:
        for _ in range(300):
            assert client.get("/api/v1/agents/summarizer").status_code == 200
        # a sampled read last: once its spans arrived, the export of the reads before it has too
        client.get("/api/v1/agents/summarizer", headers={"traceparent": f"00-{recorded}-{secrets.token_hex(8)}-01"})
    assert wait_until(lambda: {s.service for s in spans_of.trace(recorded)} >= {"sutazai-gateway", "sutazai-agents"}
                      or None, timeout_s=30, interval_s=0.5)
    spans = spans_of.all()
    gateway_traces = {s.trace_id for s in spans if s.service == "sutazai-gateway"}
    orphans = [s for s in spans if s.service == "sutazai-agents" and s.trace_id not in gateway_traces]
    assert orphans == []
    # the reads' own traces: about 3 of 300 (at most a few dozen even by chance)
    reads = {s.trace_id for s in spans if s.service == "sutazai-gateway" and s.name == "GET /api/v1/agents/{agent_id}"}
    assert len(reads - {recorded}) < 40


def test_the_performance_summary_has_the_traffic_of_this_stack(stack: RunningStack) -> None:
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=30) as client:
        for _ in range(5):
            assert client.get("/api/v1/agents/summarizer").status_code == 200
        anonymous = httpx.get(stack.url + "/api/v1/performance/metrics", timeout=10)
        assert anonymous.status_code == 401
        started = time.monotonic()
        report = client.get("/api/v1/performance/metrics")
        assert report.status_code == 200, report.text
        body = report.json()
    assert time.monotonic() - started < 30
    route = body["gateway"]["routes"]["GET /api/v1/agents/{agent_id}"]
    assert route["requests_total"] >= 5 and route["p50_ms"] is not None
    assert body["upstreams"]["agents"]["methods"]["GetAgent"]["count"] >= 5
    assert body["circuit_breakers"]["states"]["agents"] == "closed"
    agents = body["services"]["agents"]
    assert agents["methods"]["sutazai.agents.v1.AgentService/GetAgent"]["codes"]["OK"] >= 5
    assert set(body["task_queue"]) >= {"stream_messages", "tasks_by_status", "pending_by_priority"}
    assert "hit_ratio" in body["cache"]["chat_responses"]
    assert 0 <= body["system"]["cpu_percent"] <= 100
