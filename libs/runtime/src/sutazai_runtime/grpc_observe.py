"""Metrics and server spans for every RPC a service serves, without a server interceptor.

``ObservedServer`` stands in for the ``grpc.aio.Server`` handed to the generated ``add_*Servicer_to_server``
functions and wraps each method handler's behaviour once, at registration. Per call there is then one extra
coroutine frame: a latency observation on a cached histogram child, a counter by status code, an in-flight
gauge, and (only while tracing is on) a SERVER span continuing the caller's ``traceparent``.

Why not a ``grpc.aio.ServerInterceptor`` (or the official OpenTelemetry one, built on it): the interceptor
runs for every call and returns a new handler object per call (``intercept_service``), which is the kind of
per-call set-up the gateway-hotpath work removed on the client side. Span names and attributes follow the
OpenTelemetry RPC conventions (``package.Service/Method``, ``rpc.system``, ``rpc.grpc.status_code``).

Metric names follow go-grpc-prometheus: ``sutazai_grpc_server_handling_seconds{grpc_service,grpc_method}``,
``sutazai_grpc_server_handled_total{grpc_service,grpc_method,grpc_code}``, ``sutazai_grpc_server_in_flight``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from sutazai_runtime import deadlines, telemetry

HANDLING = Histogram(
    "sutazai_grpc_server_handling_seconds", "time to handle an RPC (a stream: until its end)",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
HANDLED = Counter("sutazai_grpc_server_handled_total", "RPCs completed, by status code",
                  ["grpc_service", "grpc_method", "grpc_code"])
IN_FLIGHT = Gauge("sutazai_grpc_server_in_flight", "RPCs being handled", multiprocess_mode="livesum")

# Status codes that are the server's fault (OpenTelemetry RPC conventions for a SERVER span).
_SERVER_ERRORS = frozenset({
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})


class _Method:
    """What the wrapper of one method keeps: its names and metric children, looked up once."""

    __slots__ = ("attributes", "codes", "full", "latency", "method", "service")

    def __init__(self, full: str) -> None:
        self.full = full.lstrip("/")
        self.service, _, self.method = self.full.partition("/")
        self.latency = HANDLING.labels(self.service, self.method)
        self.codes: dict[str, Any] = {}
        self.attributes = {"rpc.system": "grpc", "rpc.service": self.service, "rpc.method": self.method}

    def done(self, code: str, started: float) -> None:
        IN_FLIGHT.dec()
        self.latency.observe(time.perf_counter() - started)
        child = self.codes.get(code)
        if child is None:
            child = self.codes[code] = HANDLED.labels(self.service, self.method, code)
        child.inc()


def _code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    if exc is None:
        code = context.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
    if isinstance(exc, grpc.aio.AbortError | grpc.aio.AioRpcError):
        code = context.code() if isinstance(exc, grpc.aio.AbortError) else exc.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    if isinstance(exc, BaseException) and type(exc).__name__ == "CancelledError":
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def _span(method: _Method, context: grpc.aio.ServicerContext) -> Any:
    """The call's SERVER span as a context manager, or one that records nothing when the call is not recorded
    (its caller's decision is then passed on to the calls it makes; a call without a ``traceparent`` is not
    recorded: ``telemetry.decide``)."""
    metadata = context.invocation_metadata()
    traceparent = telemetry.traceparent_of(metadata)
    decision = telemetry.decide(traceparent, root=False)
    if decision.passed is not None:
        return _Passing(decision.passed)
    span = telemetry.start_span(
        decision, method.full, context=telemetry.context_from_metadata(metadata) if traceparent else None,
        kind=SpanKind.SERVER, attributes=method.attributes, record_exception=False, set_status_on_exception=False,
    )
    return trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False)


class _Passing:
    """A not-recorded call: no span, its trace context forwarded as it came (a context manager like a span's)."""

    __slots__ = ("_token", "_traceparent")

    def __init__(self, traceparent: str) -> None:
        self._traceparent = traceparent

    def __enter__(self) -> None:
        self._token = telemetry.passing(self._traceparent)

    def __exit__(self, *exc: object) -> None:
        telemetry.stop_passing(self._token)


def _finish_span(span: Any, code: grpc.StatusCode) -> None:
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))


def _unary(behavior: Callable[..., Any], method: _Method) -> Callable[..., Any]:
    async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        deadlines.mark(context)  # the calls this one makes get no more than its caller's time left
        IN_FLIGHT.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        if telemetry.TRACER is None:
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                method.done(_code(context, error).name, started)
        with _span(method, context) as span:
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                code = _code(context, error)
                _finish_span(span, code)
                method.done(code.name, started)

    return observed


def _stream(behavior: Callable[..., Any], method: _Method) -> Callable[..., Any]:
    async def observed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        deadlines.mark(context)
        IN_FLIGHT.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        span_cm = _span(method, context) if telemetry.TRACER is not None else None
        span = span_cm.__enter__() if span_cm is not None else None
        try:
            async for item in behavior(request, context):
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            code = _code(context, error)
            if span_cm is not None:
                _finish_span(span, code)
                span_cm.__exit__(None, None, None)
            method.done(code.name, started)

    return observed


def observe_handler(full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour observed; client-streaming methods and plain functions as they are."""
    method = _Method(full_method)
    if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
        return handler._replace(unary_unary=_unary(handler.unary_unary, method))  # type: ignore[attr-defined]
    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        return handler._replace(unary_stream=_stream(handler.unary_stream, method))  # type: ignore[attr-defined]
    return handler


class ObservedServer:
    """Passed to ``add_*Servicer_to_server`` in place of the server: registers observed handlers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        # "/package.Service/Method" -> the observed handler of every unary-unary method registered here (what
        # ``sutazai_runtime.multiplex`` serves calls carried on a stream with)
        self.unary: dict[str, grpc.RpcMethodHandler] = {}

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        observed = {name: observe_handler(f"{service}/{name}", h) for name, h in handlers.items()}
        self._keep_unary({f"/{service}/{name}": h for name, h in observed.items()})
        self._server.add_registered_method_handlers(service, observed)  # type: ignore[attr-defined]

    def _keep_unary(self, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.unary.update({full: h for full, h in handlers.items()
                           if h.unary_unary is not None and inspect.iscoroutinefunction(h.unary_unary)})

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        observed = []
        for handler in handlers:
            methods = getattr(handler, "_method_handlers", None)
            service = getattr(handler, "_name", None)
            if isinstance(methods, dict) and isinstance(service, str):  # grpc.method_handlers_generic_handler
                wrapped = {full: observe_handler(full, h) for full, h in methods.items()}
                self._keep_unary({full if full.startswith("/") else f"/{full}": h for full, h in wrapped.items()})
                handler = grpc.method_handlers_generic_handler(service, {
                    full.rsplit("/", 1)[-1]: h for full, h in wrapped.items()})
            observed.append(handler)
        self._server.add_generic_rpc_handlers(tuple(observed))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)
