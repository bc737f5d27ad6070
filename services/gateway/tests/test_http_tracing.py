"""The gateway's request span (tracing on, in ``HttpMetrics``' layer): continues an incoming traceparent, is named
by the route template, carries the status, marks a 5xx as an error; with tracing off no span is made."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sutazai_gateway.http_metrics import HttpMetrics
from sutazai_runtime import telemetry

TRACE_ID, PARENT = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "broken":
            raise HTTPException(503, "down")
        ids = telemetry.current_ids()
        return {"trace": ids[0] if ids else ""}

    app.add_middleware(HttpMetrics, traced=True)
    return app


async def test_the_request_span_continues_the_callers_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "TRACER", provider.get_tracer("test"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
        reply = await client.get("/things/a", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
        assert reply.json() == {"trace": TRACE_ID}  # the handler runs inside the continued trace
        assert (await client.get("/things/broken")).status_code == 503
        assert (await client.get("/nowhere")).status_code == 404
    first, broken, unmatched = exporter.get_finished_spans()
    assert first.name == "GET /things/{thing_id}" and first.kind == SpanKind.SERVER
    assert format(first.context.trace_id, "032x") == TRACE_ID and format(first.parent.span_id, "016x") == PARENT
    assert first.attributes["http.route"] == "/things/{thing_id}"
    assert first.attributes["http.response.status_code"] == 200
    assert broken.parent is None and broken.status.status_code == StatusCode.ERROR  # a new trace, a 5xx
    assert unmatched.name == "GET" and unmatched.attributes["http.response.status_code"] == 404


async def test_with_tracing_off_nothing_happens() -> None:
    assert telemetry.TRACER is None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
        reply = await client.get("/things/a", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
    assert reply.json() == {"trace": ""}


async def test_a_request_the_sampler_leaves_out_makes_no_span(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF), id_generator=telemetry.preset_trace_ids())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "TRACER", None)
    monkeypatch.setattr(telemetry, "_ROOT_BOUND", None)
    telemetry.use_tracer(provider.get_tracer("test"), root_bound=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
        assert (await client.get("/things/a")).json() == {"trace": ""}  # a new trace, left out
        unsampled = f"00-{TRACE_ID}-{PARENT}-00"
        assert (await client.get("/things/a", headers={"traceparent": unsampled})).json() == {"trace": ""}
        assert exporter.get_finished_spans() == ()
        # a caller's sampled parent is followed although new traces are all left out
        reply = await client.get("/things/a", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
        assert reply.json() == {"trace": TRACE_ID}
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /things/{thing_id}"]
