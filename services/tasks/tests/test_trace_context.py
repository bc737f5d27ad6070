"""A task's trace context, on the real Postgres and NATS: created inside a span, the task records the span's
trace (and the span), every dispatch carries it as a W3C ``traceparent`` header (the sweeper's re-send too),
and the worker's span continues it. Created while tracing is off, nothing is recorded or sent."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sutazai_runtime import telemetry
from sutazai_tasks import convert
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.handlers import echo
from sutazai_tasks.model import NewTask
from sutazai_tasks.store import TaskStore


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "TRACER", provider.get_tracer("test"))
    return exporter


async def _published_headers(bus: TaskBus, subject: str, publish: Any) -> dict[str, str]:
    got: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    async def on_message(msg: Any) -> None:
        if not got.done():
            got.set_result(dict(msg.headers or {}))

    sub = await bus.nc.subscribe(subject, cb=on_message)
    try:
        await publish()
        return await asyncio.wait_for(got, 5)
    finally:
        await sub.unsubscribe()


async def test_a_task_created_in_a_span_carries_its_trace_to_the_worker(
    store: TaskStore, bus: TaskBus, spans: InMemorySpanExporter, running_worker: Any, until_final: Any,
) -> None:
    tracer = telemetry.TRACER
    assert tracer is not None
    with tracer.start_as_current_span("CreateTask") as creating:
        task, _ = await store.create(NewTask(owner_id=f"u-{uuid.uuid4().hex[:6]}", task_type="echo",
                                             payload_json='{"x": 1}', priority=10))
    trace_id = format(creating.get_span_context().trace_id, "032x")
    span_id = format(creating.get_span_context().span_id, "016x")
    assert (task.trace_id, task.span_id) == (trace_id, span_id)
    assert convert.to_proto(task).trace_id == trace_id

    subject = bus.names.work("high")
    headers = await _published_headers(bus, subject, lambda: bus.dispatch(task))
    assert headers["traceparent"] == f"00-{trace_id}-{span_id}-01"
    again = await _published_headers(bus, subject, lambda: bus.dispatch_stored(task))  # the sweeper's way
    assert again["traceparent"] == headers["traceparent"]

    async with running_worker(store, bus, {"echo": echo}):
        assert (await until_final(store, task.id)).status == "completed"
    run = next(s for s in spans.get_finished_spans() if s.name == "run echo task")
    assert run.kind == SpanKind.CONSUMER
    assert run.context.trace_id == creating.get_span_context().trace_id
    assert run.parent.span_id == creating.get_span_context().span_id
    assert run.attributes["sutazai.task_id"] == task.id


async def test_without_tracing_nothing_is_recorded_or_sent(store: TaskStore, bus: TaskBus) -> None:
    assert telemetry.TRACER is None
    task, _ = await store.create(NewTask(owner_id=f"u-{uuid.uuid4().hex[:6]}", task_type="echo",
                                         payload_json="{}", priority=10))
    assert task.trace_id is None and convert.to_proto(task).trace_id == ""
    headers = await _published_headers(bus, bus.names.work("high"), lambda: bus.dispatch(task))
    assert "traceparent" not in headers and headers["Nats-Msg-Id"] == task.id


async def test_a_task_created_outside_a_recorded_trace_runs_unrecorded(
    store: TaskStore, bus: TaskBus, running_worker: Any, until_final: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Traces start where work enters the platform: a task whose creation was not recorded (no traceparent in
    its message) makes no worker span, even under a sampler that would record every new trace, and the calls
    its handler makes carry no trace context (``pass_on`` answers "")."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporter = InMemorySpanExporter()
    root = TraceIdRatioBased(1.0)
    provider = TracerProvider(sampler=ParentBased(root), id_generator=telemetry.preset_trace_ids())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "TRACER", None)  # restored after the test, with the bound below
    monkeypatch.setattr(telemetry, "_ROOT_BOUND", None)
    telemetry.use_tracer(provider.get_tracer("test"), root_bound=root.bound)
    seen: list[str | None] = []

    async def handler(task: Any, progress: Any) -> Any:
        seen.append(telemetry.pass_on())
        return await echo(task, progress)

    task, _ = await store.create(NewTask(owner_id=f"u-{uuid.uuid4().hex[:6]}", task_type="echo",
                                         payload_json="{}", priority=10))
    assert task.trace_id is None
    async with running_worker(store, bus, {"echo": handler}):
        await bus.dispatch(task)
        assert (await until_final(store, task.id)).status == "completed"
    assert seen == [""]
    assert exporter.get_finished_spans() == ()
