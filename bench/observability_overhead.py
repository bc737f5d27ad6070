"""What metrics and traces cost per request on the one-hop read, in CPU microseconds, in one process.

The hop of ``GET /api/v1/agents/{id}`` rebuilt small: a FastAPI route calling ``GetAgent`` through the
platform's ``Upstream`` on a real ``grpc.aio`` server (loopback) that ``sutazai_runtime.grpc_server.serve``
runs. The ASGI app is called directly (no HTTP client or server), one request at a time, so the CPU time per
request is the app's, the gRPC client's and the gRPC server's together, and a difference between variants is
what the variant adds. Variants, measured in interleaved rounds:

- ``bare``: no HTTP metrics middleware, ``Upstream`` without its latency histogram, the servicer registered
  without ``ObservedServer``;
- ``metrics``: what ships (tracing off): the route-template histogram, the upstream histogram, per-method
  server metrics;
- ``grpc_spans``: ``metrics`` plus the gRPC client and server spans and the ``traceparent`` metadata (no
  request span);
- ``tracing``: ``metrics`` plus tracing on as it ships: the gateway's request span (in ``HttpMetrics``' layer), the gRPC
  client and server spans and the ``traceparent`` metadata, spans batched and OTLP-encoded by the SDK's
  ``BatchSpanProcessor`` (the encoded bytes are dropped instead of sent: the network write is not counted);
- ``unsampled``: ``tracing`` with a sampler that records nothing, through the SDK (before ``telemetry.decide``);
- ``passed_on``: ``tracing`` as shipped for a request the parent-based sampler leaves out: decided at the edge,
  no span object anywhere, no trace context sent on (the service records nothing for a call without one);
- ``identity``: ``metrics`` with the signed proof the gateway attaches (its minter's cached token), verified by
  the server's identity interceptor (the verifier's cache) and required by the servicer; beside ``metrics``
  (the same server, the call without a proof) it is what the identity proof costs the read.

``.venv/bin/python bench/observability_overhead.py --requests 2000 --rounds 5``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import uvloop
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai_gateway.http_metrics import HttpMetrics
from sutazai_runtime import telemetry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.identity import USER, Identity, IdentitySettings, require_identity
from sutazai_runtime.identity.keys import ensure_key_pair
from sutazai_runtime.identity.proof import ProofMinter
from sutazai_runtime.resilience.upstream import Upstream
from sutazai_runtime.settings import ServiceSettings


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_OBSBENCH_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)
    register_instance: bool = False


class _Agents(agents_pb2_grpc.AgentServiceServicer):
    async def GetAgent(self, request: Any, context: Any) -> Any:
        if request.id == "needs-identity":
            await require_identity(context)
        return agents_pb2.Agent(id=request.id, name="bench")


class _EncodeAndDrop(SpanExporter):
    """The OTLP exporter's encoding, without the network write."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


async def _server(observed: bool) -> tuple[str, asyncio.Event, asyncio.Task[None]]:
    stop, port = asyncio.Event(), []
    servicer = _Agents()
    if observed:
        register = [lambda s: agents_pb2_grpc.add_AgentServiceServicer_to_server(servicer, s)]
    else:  # straight onto the real server, around ObservedServer
        register = [lambda s: agents_pb2_grpc.add_AgentServiceServicer_to_server(servicer, s._server)]
    spec = GrpcService(name="bench", settings=_Settings(probe_interval_s=5), register=register,
                       service_names=["sutazai.agents.v1.AgentService"])
    task = asyncio.create_task(serve(spec, stop=stop, bound_port=port))
    while not port:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return f"127.0.0.1:{port[0]}", stop, task


def _app(upstream: Upstream, *, http_metrics: bool, tracing: bool, identity: ProofMinter | None = None) -> FastAPI:
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    stub = upstream.stub(agents_pb2_grpc.AgentServiceStub)
    caller = Identity("bench-user", frozenset({USER}))

    @app.get("/api/v1/agents/{agent_id}")
    async def get_agent(agent_id: str) -> dict[str, str]:
        if identity is None:
            agent = await stub.GetAgent(agents_pb2.GetAgentRequest(id=agent_id), timeout=5)
        else:  # as the gateway does: the caller's identity with the minter's current proof
            agent = await stub.GetAgent(agents_pb2.GetAgentRequest(id="needs-identity"), timeout=5,
                                        metadata=identity.attach(caller).to_metadata())
        return {"id": agent.id, "name": agent.name}

    if http_metrics or tracing:  # as the gateway installs it: one layer, the request span in it while tracing
        app.add_middleware(HttpMetrics, traced=tracing)
    return app


async def _drive(app: Any, count: int, flush: Any = None) -> float:
    """CPU seconds per request (this process, every thread: the SDK's export thread included)."""
    scope_base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                  "scheme": "http", "path": "/api/v1/agents/a1", "raw_path": b"/api/v1/agents/a1",
                  "query_string": b"", "root_path": "", "headers": [(b"host", b"bench")],
                  "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for _ in range(count):
        await app(dict(scope_base), receive, send)
    if flush is not None:  # the spans of these requests are encoded inside the measured time, not the next one's
        flush()
    elapsed = time.process_time() - started
    assert set(statuses) == {200}, set(statuses)
    return elapsed / count


async def main(requests: int, rounds: int) -> None:
    exporter = _EncodeAndDrop()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("sutazai")
    # the same with a sampler that records nothing (OTEL_TRACES_SAMPLER=always_off, or a ratio's unsampled share)
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("sutazai")
    # as configure_tracing installs it, with a ratio of 0: every new trace decided at the edge and passed on
    passing = TracerProvider(sampler=ParentBased(ALWAYS_OFF), id_generator=telemetry.preset_trace_ids())
    minter = IdentitySettings().minter("gateway")

    bare_target, bare_stop, bare_task = await _server(observed=False)
    target, stop, task = await _server(observed=True)
    bare_upstream = Upstream("agents", targets=[bare_target])
    bare_upstream.unary = bare_upstream._unary  # type: ignore[method-assign]  # no histogram, no tracing check
    upstream = Upstream("agents", targets=[target])
    # name: (app, tracer, root bound of a parent-based sampler for telemetry.decide (None: the SDK decides))
    variants: dict[str, tuple[FastAPI, Any, int | None]] = {
        "bare": (_app(bare_upstream, http_metrics=False, tracing=False), None, None),
        "metrics": (_app(upstream, http_metrics=True, tracing=False), None, None),
        "grpc_spans": (_app(upstream, http_metrics=True, tracing=False), tracer, None),
        "tracing": (_app(upstream, http_metrics=True, tracing=True), tracer, None),
        "unsampled": (_app(upstream, http_metrics=True, tracing=True), unsampled, None),
        "passed_on": (_app(upstream, http_metrics=True, tracing=True), passing.get_tracer("sutazai"), 0),
        "identity": (_app(upstream, http_metrics=True, tracing=False, identity=minter), None, None),
    }
    for app, tracer_of, bound in variants.values():  # warm up: channels connected, caches filled
        telemetry.use_tracer(tracer_of, root_bound=bound)
        await _drive(app, 200, provider.force_flush)
    results: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            app, tracer_of, bound = variants[name]
            telemetry.use_tracer(tracer_of, root_bound=bound)
            results[name].append(await _drive(app, requests, provider.force_flush))
    telemetry.use_tracer(None)
    provider.force_flush()

    base = statistics.median(results["bare"])
    print(f"{'variant':10} {'CPU us/request':>15} {'added us':>10} {'ratio':>7}")  # noqa: T201
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:10} {median * 1e6:15.1f} {(median - base) * 1e6:10.1f} {median / base:7.3f}")  # noqa: T201
    print(f"spans exported (encoded): {exporter.spans}; rounds {rounds} x {requests} requests")  # noqa: T201

    for stopper, running in ((bare_stop, bare_task), (stop, task)):
        stopper.set()
        await asyncio.wait_for(running, 10)
    await bare_upstream.close()
    await upstream.close()
    provider.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sutazai-obsbench-") as keys:  # the services' key pair, for the proof
        private, public = ensure_key_pair(Path(keys))
        os.environ["SUTAZAI_IDENTITY_PRIVATE_KEY_FILE"], os.environ["SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE"] = (
            str(private), str(public))
        grpc.aio.init_grpc_aio()
        uvloop.run(main(args.requests, args.rounds))
