"""Metrics and traces of gRPC calls, over a real server run by ``serve`` and called through ``Upstream``:
per-method latency and status codes on the server, per-upstream latency on the client, the same numbers
through ``Diagnostics.GetMetrics``, and, with tracing on, one trace from the caller's span through the
client span to the server span (streams included); with tracing off, no trace context travels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai.common.v1 import common_pb2, common_pb2_grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime import telemetry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.resilience.upstream import Upstream
from sutazai_runtime.settings import ServiceSettings, TelemetrySettings

SERVICE = "sutazai.tasks.v1.TaskService"


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_OBSTEST_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)
    register_instance: bool = False


class _Tasks(tasks_pb2_grpc.TaskServiceServicer):
    def __init__(self) -> None:
        self.metadata: list[dict[str, Any]] = []

    async def GetTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        if request.task_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such task")
        return tasks_pb2.Task(task_id=request.task_id)

    async def WatchTask(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        for kind in ("state", "progress"):
            yield tasks_pb2.TaskEvent(task_id=request.task_id, type=kind)


@contextlib.asynccontextmanager
async def _served() -> AsyncIterator[tuple[_Tasks, Upstream, str]]:
    servicer = _Tasks()
    stop = asyncio.Event()
    port: list[int] = []
    spec = GrpcService(name="obstest", settings=_Settings(probe_interval_s=0.5),
                       register=[lambda s: tasks_pb2_grpc.add_TaskServiceServicer_to_server(servicer, s)],
                       service_names=[SERVICE])
    task = asyncio.create_task(serve(spec, stop=stop, bound_port=port))
    while not port:  # noqa: ASYNC110 - serve() reports its port through the list
        await asyncio.sleep(0.01)
    target = f"127.0.0.1:{port[0]}"
    upstream = Upstream("obstest", targets=[target])
    try:
        yield servicer, upstream, target
    finally:
        await upstream.close()
        stop.set()
        await asyncio.wait_for(task, 10)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Tracing on for the test: spans go to memory (the process's global provider is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "TRACER", provider.get_tracer("test"))
    return exporter


async def test_server_and_client_metrics_count_each_call_by_method_and_code() -> None:
    assert telemetry.TRACER is None
    ok = {"grpc_service": SERVICE, "grpc_method": "GetTask", "grpc_code": "OK"}
    missing = {**ok, "grpc_code": "NOT_FOUND"}
    before = (_value("sutazai_grpc_server_handled_total", **ok), _value("sutazai_grpc_server_handled_total", **missing),
              _value("sutazai_upstream_call_seconds_count", upstream="obstest", method="GetTask"),
              _value("sutazai_grpc_server_handling_seconds_count", grpc_service=SERVICE, grpc_method="WatchTask"))
    async with _served() as (servicer, upstream, target):
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        for _ in range(3):
            assert (await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t1"))).task_id == "t1"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="missing"))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        events = [e.type async for e in stub.WatchTask(tasks_pb2.WatchTaskRequest(task_id="t1"))]
        assert events == ["state", "progress"]
        # tracing off: nothing about traces travels
        assert all("traceparent" not in m for m in servicer.metadata)

        async with grpc.aio.insecure_channel(target) as channel:
            reply = await common_pb2_grpc.DiagnosticsStub(channel).GetMetrics(
                common_pb2.GetMetricsRequest(names=["sutazai_grpc_server_handled"]), timeout=5)
        exposition = reply.exposition.decode()
    assert _value("sutazai_grpc_server_handled_total", **ok) - before[0] == 3
    assert _value("sutazai_grpc_server_handled_total", **missing) - before[1] == 1
    assert _value("sutazai_upstream_call_seconds_count", upstream="obstest", method="GetTask") - before[2] == 4
    assert _value("sutazai_grpc_server_handling_seconds_count", grpc_service=SERVICE,
                  grpc_method="WatchTask") - before[3] == 1
    assert reply.service == "obstest"
    assert 'grpc_code="NOT_FOUND"' in exposition and "sutazai_grpc_server_handling_seconds" not in exposition


async def test_a_call_is_one_trace_from_the_callers_span_to_the_servers(spans: InMemorySpanExporter) -> None:
    tracer = telemetry.TRACER
    assert tracer is not None
    async with _served() as (servicer, upstream, _):
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        with tracer.start_as_current_span("caller") as caller:
            await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t1"))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="missing"))
            assert [e.type async for e in stub.WatchTask(tasks_pb2.WatchTaskRequest(task_id="t1"))]
    trace_id = caller.get_span_context().trace_id
    finished = spans.get_finished_spans()
    assert {s.context.trace_id for s in finished} == {trace_id}
    clients = [s for s in finished if s.kind == SpanKind.CLIENT]
    servers = [s for s in finished if s.kind == SpanKind.SERVER]
    assert [s.name for s in clients] == [f"{SERVICE}/GetTask"] * 2
    assert sorted(s.name for s in servers) == sorted([f"{SERVICE}/GetTask"] * 2 + [f"{SERVICE}/WatchTask"])
    by_id = {s.context.span_id: s for s in finished}
    for server in servers:  # unary: under the client span; a stream: under the caller's span
        parent = by_id[server.parent.span_id]
        assert parent.kind == SpanKind.CLIENT if server.name.endswith("GetTask") else parent.name == "caller"
    refused = next(s for s in servers if s.attributes.get("rpc.grpc.status_code") == grpc.StatusCode.NOT_FOUND.value[0])
    assert refused.status.is_ok  # NOT_FOUND is the caller's error, not the server's
    assert all("traceparent" in m for m in servicer.metadata)


def test_log_lines_inside_a_span_carry_its_ids(spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> None:
    tracer = telemetry.TRACER
    assert tracer is not None
    caplog.handler.addFilter(telemetry.TraceIdsFilter())
    with caplog.at_level(logging.INFO), tracer.start_as_current_span("work") as span:
        logging.getLogger("test").info("inside")
    logging.getLogger("test").warning("outside")
    inside, outside = caplog.records[-2], caplog.records[-1]
    assert inside.trace_id == format(span.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]
    assert not hasattr(outside, "trace_id")


def test_nats_headers_carry_a_task_s_context_and_are_continued(spans: InMemorySpanExporter) -> None:
    tracer = telemetry.TRACER
    assert tracer is not None
    headers = telemetry.trace_headers("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    with tracer.start_as_current_span("consumer", context=telemetry.context_from_headers(headers)) as span:
        assert telemetry.current_ids() == ("0af7651916cd43dd8448eb211c80319c",
                                           format(span.get_span_context().span_id, "016x"))
    assert spans.get_finished_spans()[0].parent.span_id == 0xB7AD6B7169203331
    assert telemetry.trace_headers(None, None) == {}


def test_tracing_is_off_without_an_endpoint_and_on_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert telemetry.configure_tracing("x", TelemetrySettings()) is False and telemetry.TRACER is None
    assert telemetry.current_ids() is None
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "nonsense")
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER"):
        TelemetrySettings()


# --- not-recorded work makes no span (a parent-based sampler's decision passed on) ---------------------------

def _sampled_tracer(monkeypatch: pytest.MonkeyPatch, ratio: float) -> InMemorySpanExporter:
    """Tracing on as ``configure_tracing`` installs it (ParentBased over TraceIdRatioBased, preset ids)."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporter = InMemorySpanExporter()
    root = TraceIdRatioBased(ratio)
    provider = TracerProvider(sampler=ParentBased(root), id_generator=telemetry.preset_trace_ids())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "TRACER", None)  # restored after the test, with the bound below
    monkeypatch.setattr(telemetry, "_ROOT_BOUND", None)
    telemetry.use_tracer(provider.get_tracer("test"), root_bound=root.bound)
    return exporter


UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


async def test_an_unsampled_callers_call_makes_no_span_and_forwards_its_traceparent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = _sampled_tracer(monkeypatch, 1.0)  # every new trace would be recorded: only the parent decides
    async with _served() as (servicer, upstream, _):
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        token = telemetry.passing(UNSAMPLED)
        try:
            await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t1"))
            assert [e.type async for e in stub.WatchTask(tasks_pb2.WatchTaskRequest(task_id="t1"))]
            assert telemetry.current_ids() is None  # nothing recorded: no ids for logs or task records
        finally:
            telemetry.stop_passing(token)
        assert [m["traceparent"] for m in servicer.metadata] == [UNSAMPLED, UNSAMPLED]
        assert exporter.get_finished_spans() == ()
        # under a sampled parent the same call is recorded, client and server span both
        assert telemetry.TRACER is not None
        parent = telemetry.context_from_headers({"traceparent": UNSAMPLED[:-2] + "01"})
        with telemetry.TRACER.start_as_current_span("caller", context=parent):
            await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t2"))
    finished = exporter.get_finished_spans()
    assert sorted(s.kind.name for s in finished) == ["CLIENT", "INTERNAL", "SERVER"]
    assert {s.context.trace_id for s in finished} == {int(UNSAMPLED[3:35], 16)}


def test_decide_settles_as_the_sdks_sampler_would(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.sampling import Decision as SdkDecision
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    exporter = _sampled_tracer(monkeypatch, 0.25)
    ratio = TraceIdRatioBased(0.25)
    recorded = 0
    for _ in range(2000):  # a new trace: recorded exactly when the SDK's ratio sampler keeps its trace id
        decision = telemetry.decide(None)
        if decision.passed is not None:
            assert decision is telemetry.NOT_RECORDED  # left out: no trace context of ours is made or sent
        else:
            recorded += 1
            assert ratio.should_sample(None, decision.trace_id, "x").decision == SdkDecision.RECORD_AND_SAMPLE
            span = telemetry.start_span(decision, "root")
            assert span.is_recording() and span.get_span_context().trace_id == decision.trace_id
            span.end()
    assert 400 < recorded < 600 and len(exporter.get_finished_spans()) == recorded
    # a service's incoming call without a traceparent: its caller did not record it, so neither does the service
    assert all(telemetry.decide(None, root=False) is telemetry.NOT_RECORDED for _ in range(100))
    assert telemetry.decide(UNSAMPLED).passed == UNSAMPLED  # a not-sampled parent: passed on as it came
    assert telemetry.decide(UNSAMPLED, root=False).passed == UNSAMPLED
    assert telemetry.decide(UNSAMPLED[:-2] + "01") == telemetry.Decision()  # sampled parent: the SDK continues
    for broken in ("00-" + "0" * 32 + "-b7ad6b7169203331-00", "garbage", "01-abc"):
        assert telemetry.decide(broken) == telemetry.Decision()  # invalid: the SDK starts a trace as for none
    telemetry.use_tracer(telemetry.TRACER, root_bound=None)  # not parent-based: the SDK decides everything
    assert telemetry.decide(UNSAMPLED) == telemetry.Decision() and telemetry.pass_on() is None
    assert telemetry.decide(None, root=False) == telemetry.Decision()


async def test_work_left_out_at_the_edge_sends_no_trace_context_and_the_service_records_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = _sampled_tracer(monkeypatch, 1.0)  # a service that started traces itself would record these
    async with _served() as (servicer, upstream, target):
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        token = telemetry.passing("")  # as a request the gateway's sampler left out (NOT_RECORDED)
        try:
            await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t1"))
            assert [e.type async for e in stub.WatchTask(tasks_pb2.WatchTaskRequest(task_id="t1"))]
        finally:
            telemetry.stop_passing(token)
        assert ["traceparent" in m for m in servicer.metadata] == [False, False]
        # a direct call without trace context (a script, grpcurl) is not recorded either
        channel = grpc.aio.insecure_channel(target)
        try:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(tasks_pb2.GetTaskRequest(task_id="t2"))
        finally:
            await channel.close()
    assert exporter.get_finished_spans() == ()


def test_the_default_sampler_records_one_new_trace_in_a_hundred(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(name, raising=False)
    assert (TelemetrySettings().sampler, TelemetrySettings().ratio) == ("parentbased_traceidratio", 0.01)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")  # named without its argument: the standard's 1.0
    assert TelemetrySettings().ratio == 1.0
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert TelemetrySettings().ratio == 0.25
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.5")
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG"):
        TelemetrySettings()
