"""Run a ``grpc.aio`` server the same way in every service.

- the standard ``grpc.health.v1`` service: ``SERVING`` only while every dependency probe passes,
  re-checked every ``probe_interval_s``;
- ``sutazai.common.v1.Diagnostics``: the last probe results, for the gateway's detailed health;
- server reflection;
- every call's identity proof verified before the servicer runs (``sutazai_runtime.identity``);
- Prometheus metrics over HTTP (process metrics, one gauge per dependency, and per RPC method the latency,
  status codes and calls in flight: ``grpc_observe``), and the same through ``Diagnostics.GetMetrics``;
- a SERVER span per RPC continuing the caller's trace, while tracing is on (``telemetry``);
- each served call's deadline is recorded (``sutazai_runtime.deadlines``), so that the calls it makes
  through an ``Upstream`` carry no more than the time its caller has left;
- the instance registers itself (``sutazai_runtime.discovery``): id, address, port, tags, metadata
  (version, zone, weight, metrics port), ``passing`` while health is SERVING; deregistered on stop;
- SIGTERM or SIGINT: the instance leaves the registry, health turns ``NOT_SERVING``, the server stops
  taking calls, in-flight calls get ``shutdown_grace_s`` to finish, then the service's cleanups run; all within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, Gauge, generate_latest, start_http_server
from sutazai.common.v1 import common_pb2, common_pb2_grpc

from sutazai_runtime import __version__
from sutazai_runtime.discovery.announce import Announcer, instance_for
from sutazai_runtime.discovery.registry import Registry
from sutazai_runtime.discovery.settings import open_registry
from sutazai_runtime.grpc_observe import ObservedServer
from sutazai_runtime.identity import IdentityInterceptor, require_admin
from sutazai_runtime.multiplex import MultiplexServicer
from sutazai_runtime.probes import Probe, ProbeResult, run_probes
from sutazai_runtime.process import freeze_startup_objects
from sutazai_runtime.resilience.guards import Guard
from sutazai_runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

DEPENDENCY_UP = Gauge("sutazai_dependency_up", "1 when the dependency answered the last probe", ["dependency"])
DEPENDENCY_LATENCY = Gauge(
    "sutazai_dependency_latency_seconds", "latency of the last probe", ["dependency"]
)

Cleanup = Callable[[], Awaitable[object]]
Register = Callable[[grpc.aio.Server], None]


@dataclass
class GrpcService:
    """What a service hands to ``serve``: its servicers, its dependency probes and its cleanups."""

    name: str
    settings: ServiceSettings
    register: Sequence[Register]
    service_names: Sequence[str]  # full names of the services ``register`` adds, for health/reflection
    probes: Sequence[Probe] = ()
    cleanups: Sequence[Cleanup] = ()
    background: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Largest request a client may send (gRPC's default is 4 MiB); memory takes documents of up to 10 MiB.
    max_receive_bytes: int | None = None
    # The registry to announce this instance in; None: opened from ``settings.discovery`` (and closed).
    registry: Registry | None = None
    # The circuit breakers this instance keeps (its upstreams, chat's model backends), shown and reset by admins
    # through Diagnostics (the gateway's /api/v1/health/circuit-breakers).
    guards: Sequence[Guard] = ()


class _Diagnostics(common_pb2_grpc.DiagnosticsServicer):
    def __init__(self, service: str, guards: Sequence[Guard] = ()) -> None:
        self._service = service
        self._guards = list(guards)
        self._started = time.monotonic()
        self.results: list[ProbeResult] = []

    async def GetDependencies(
        self, request: common_pb2.GetDependenciesRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.GetDependenciesResponse:
        return common_pb2.GetDependenciesResponse(
            service=self._service,
            version=__version__,
            uptime_s=time.monotonic() - self._started,
            dependencies=[
                common_pb2.Dependency(
                    name=r.name, healthy=r.healthy, latency_ms=r.latency_ms, error=r.error, target=r.target
                )
                for r in self.results
            ],
        )

    async def GetMetrics(
        self, request: common_pb2.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.GetMetricsResponse:
        names = [f"{n}{suffix}" for n in request.names for suffix in ("", "_total", "_bucket", "_count", "_sum")]
        registry = REGISTRY.restricted_registry(names) if names else REGISTRY
        return common_pb2.GetMetricsResponse(service=self._service, exposition=generate_latest(registry))
    async def GetBreakers(self, request: common_pb2.GetBreakersRequest, context: grpc.aio.ServicerContext
                          ) -> common_pb2.GetBreakersResponse:
        await require_admin(context)
        return common_pb2.GetBreakersResponse(breakers=[
            common_pb2.Breaker(name=g.name, kind=g.kind, snapshot_json=json.dumps(g.snapshot()).encode())
            for g in self._guards
        ])

    async def ResetBreakers(self, request: common_pb2.ResetBreakersRequest, context: grpc.aio.ServicerContext
                            ) -> common_pb2.ResetBreakersResponse:
        await require_admin(context)
        chosen = [g for g in self._guards if not request.name or g.name == request.name]
        if request.name and not chosen:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no circuit breaker is called {request.name!r}")
        for guard in chosen:
            guard.reset()
        log.info("circuit breakers reset by an admin: %s", ", ".join(g.name for g in chosen) or "none")
        return common_pb2.ResetBreakersResponse(reset=[g.name for g in chosen])


async def _watch_dependencies(
    spec: GrpcService, servicer: health.aio.HealthServicer, diagnostics: _Diagnostics,
    announcer: Announcer | None = None,
) -> None:
    names = ["", *spec.service_names]
    serving: bool | None = None
    while True:
        results = await run_probes(list(spec.probes), spec.settings.probe_timeout_s)
        diagnostics.results = results
        for r in results:
            DEPENDENCY_UP.labels(r.name).set(1 if r.healthy else 0)
            DEPENDENCY_LATENCY.labels(r.name).set(r.latency_ms / 1000)
        now_serving = all(r.healthy for r in results)
        if now_serving != serving:
            down = [f"{r.name}: {r.error}" for r in results if not r.healthy]
            if now_serving:
                log.info("serving: every dependency answers")
            else:
                log.warning("not serving: %s", "; ".join(down))
            status = health_pb2.HealthCheckResponse.SERVING if now_serving else (
                health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in names:
                await servicer.set(name, status)
            serving = now_serving
            if announcer is not None:
                await announcer.serving(now_serving)
        await asyncio.sleep(spec.settings.probe_interval_s)


async def serve(spec: GrpcService, *, stop: asyncio.Event | None = None, bound_port: list[int] | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then stop gracefully. Returns when the service has
    fully stopped. ``bound_port`` receives the port actually bound (useful with ``grpc_port=0`` in tests)."""
    settings = spec.settings
    options: list[tuple[str, int]] = [("grpc.so_reuseport", 0)]
    if spec.max_receive_bytes:
        options.append(("grpc.max_receive_message_length", spec.max_receive_bytes))
    # Every call's identity proof is checked before a servicer runs (no public key configured: no start);
    interceptor = IdentityInterceptor(settings.identity.verifier())
    server = grpc.aio.server(options=options, interceptors=[interceptor])
    # metrics, spans and the incoming deadline (passed on by Upstream) per method, wrapped once at registration
    observed = ObservedServer(server)
    for register in spec.register:
        register(observed)  # type: ignore[arg-type]
    # the same unary handlers, for calls carried as messages on a long-lived stream (hot paths; ``multiplex``)
    multiplex = MultiplexServicer(observed.unary, interceptor.verifier)
    common_pb2_grpc.add_MultiplexServicer_to_server(multiplex, server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *spec.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    diagnostics = _Diagnostics(spec.name, spec.guards)
    common_pb2_grpc.add_DiagnosticsServicer_to_server(diagnostics, server)
    reflection.enable_server_reflection(
        (
            *spec.service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            common_pb2.DESCRIPTOR.services_by_name["Diagnostics"].full_name,
            common_pb2.DESCRIPTOR.services_by_name["Multiplex"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )

    address = f"{settings.host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC port {address}")
    if bound_port is not None:
        bound_port.append(port)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
    await server.start()
    log.info("gRPC server listening", extra={"port": port, "metrics_port": settings.metrics_port})
    freeze_startup_objects()

    loop = asyncio.get_running_loop()
    signals: tuple[signal.Signals, ...] = ()
    if stop is None:  # a process of its own: signals stop it; an embedding caller passes ``stop``
        stop = asyncio.Event()
        signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)

    announcer, own_registry = await _announce(spec, port)
    tasks = [asyncio.create_task(_watch_dependencies(spec, health_servicer, diagnostics, announcer))]
    tasks += [asyncio.create_task(job()) for job in spec.background]
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task failed; stopping", exc_info=task.exception())

    started = time.monotonic()
    log.info("stopping: refusing new calls, %.1f s grace for in-flight ones", settings.shutdown_grace_s)
    if announcer is not None:  # first out of the registry, so that callers stop choosing this instance
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await announcer.stop()
    await health_servicer.enter_graceful_shutdown()
    multiplex.drain()  # calls carried on streams are refused from now on, as new unary calls are
    for task in tasks:
        task.cancel()
    await server.stop(settings.shutdown_grace_s)
    # Cleanups share one short budget so that SIGTERM to exit stays under 5 s.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            for cleanup in spec.cleanups:
                try:
                    await cleanup()
                except Exception:
                    log.warning("cleanup failed", exc_info=True)
    if own_registry is not None:
        await own_registry.close()
    stopped.cancel()
    for sig in signals:
        loop.remove_signal_handler(sig)
    log.info("stopped in %.2f s", time.monotonic() - started)


async def _announce(spec: GrpcService, port: int) -> tuple[Announcer | None, Registry | None]:
    """Register this instance; returns the announcer and the registry ``serve`` opened (to close)."""
    settings = spec.settings
    if not settings.register_instance:
        return None, None
    registry, own = spec.registry, None
    if registry is None:
        from sutazai_runtime.startup import connect_with_retry

        registry = own = await connect_with_retry(
            "registry", lambda: open_registry(settings.discovery, client_name=f"sutazai-{spec.name}"),
            timeout_s=settings.startup_timeout_s,
        )
    announcer = Announcer(registry, instance_for(spec.name, settings, port))
    await announcer.start()
    return announcer, own
