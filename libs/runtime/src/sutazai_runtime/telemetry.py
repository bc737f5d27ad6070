"""Traces with OpenTelemetry: one switch per process, and the carriers the platform uses.

``configure_tracing`` (called once in ``main()``) installs the SDK with an OTLP/gRPC exporter when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and sets ``TRACER``. Without an endpoint ``TRACER`` stays None and
every hook in the platform (the gRPC server wrapper, ``Upstream``, the task bus and worker, chat's model
call, the gateway) tests that one name and does nothing else: no span objects, no context look-ups.

Carriers: W3C ``traceparent``/``tracestate`` in gRPC metadata (``with_trace_metadata``,
``context_from_metadata``) and in NATS message headers (``trace_headers``, ``context_from_headers``), through
the globally configured propagator (W3C trace context and baggage unless ``OTEL_PROPAGATORS`` says otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

from sutazai_runtime.settings import TelemetrySettings

log = logging.getLogger(__name__)

# None: tracing is off in this process (the hot paths test only this).
TRACER: trace.Tracer | None = None
_provider: Any = None


def configure_tracing(service: str, settings: TelemetrySettings) -> bool:
    """Install the SDK and the OTLP exporter when ``settings`` names an endpoint; True when tracing is on.
    Spans are batched and exported in a thread of the SDK; pending ones are flushed at exit."""
    global TRACER, _provider
    if not settings.enabled:
        TRACER = None
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        ParentBased,
        Sampler,
        TraceIdRatioBased,
    )

    roots: dict[str, Sampler] = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF,
                                 "traceidratio": TraceIdRatioBased(settings.sampler_arg)}
    kind = settings.sampler.removeprefix("parentbased_")
    sampler = ParentBased(roots[kind]) if settings.sampler.startswith("parentbased_") else roots[kind]
    resource = Resource.create({"service.name": f"sutazai-{service}"})
    provider = TracerProvider(resource=resource, sampler=sampler)
    endpoint = settings.otlp_endpoint.strip()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=endpoint, insecure=endpoint.startswith("http://"), timeout=5)))
    trace.set_tracer_provider(provider)
    _provider = provider
    TRACER = provider.get_tracer("sutazai")
    log.info("tracing: spans exported over OTLP", extra={"otlp_endpoint": endpoint, "sampler": settings.sampler})
    return True


def shutdown_tracing(timeout_s: float = 2.0) -> None:
    """Export what is pending (also done at exit by the SDK)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


# --- carriers ----------------------------------------------------------------------------------------------

class _PairsGetter(Getter[Iterable[Any]]):
    """gRPC invocation metadata: (key, value) pairs."""

    def get(self, carrier: Iterable[Any], key: str) -> list[str] | None:
        found = [v if isinstance(v, str) else v.decode("latin-1") for k, v in carrier if k == key]
        return found or None

    def keys(self, carrier: Iterable[Any]) -> list[str]:
        return [k for k, _ in carrier]


_PAIRS = _PairsGetter()


def context_from_metadata(metadata: Iterable[Any] | None) -> Context:
    """The caller's trace context from gRPC invocation metadata (an empty context when it carries none)."""
    return propagate.extract(metadata or (), getter=_PAIRS)


def with_trace_metadata(metadata: Sequence[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus the current trace context (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*(metadata or ()), *carrier.items())


def trace_headers(trace_id: str | None, span_id: str | None) -> dict[str, str]:
    """NATS headers continuing the span ``span_id`` of trace ``trace_id`` (hex, as ``current_ids`` gives)."""
    if not trace_id or not span_id:
        return {}
    return {"traceparent": f"00-{trace_id}-{span_id}-01"}


def context_from_headers(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(headers or {})


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or None (tracing off, or no valid span)."""
    if TRACER is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class TraceIdsFilter(logging.Filter):
    """Puts ``trace_id`` and ``span_id`` on every log record made inside a span (tracing on only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if TRACER is not None:
            ids = current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True
