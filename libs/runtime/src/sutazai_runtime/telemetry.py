"""Traces with OpenTelemetry: one switch per process, and the carriers the platform uses.

``configure_tracing`` (called once in ``main()``) installs the SDK with an OTLP/gRPC exporter when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and sets ``TRACER``. Without an endpoint ``TRACER`` stays None and
every hook in the platform (the gRPC server wrapper, ``Upstream``, the task bus and worker, chat's model
call, the gateway) tests that one name and does nothing else: no span objects, no context look-ups.

Carriers: W3C ``traceparent``/``tracestate`` in gRPC metadata (``with_trace_metadata``,
``context_from_metadata``) and in NATS message headers (``trace_headers``, ``context_from_headers``), through
the globally configured propagator (W3C trace context and baggage unless ``OTEL_PROPAGATORS`` says otherwise).

Work that will not be recorded makes no span object. With a parent-based sampler (the default) the decision of
the request that starts a trace holds for everything it causes, so ``decide`` settles it at the edge (the
gateway's request, a gRPC call) from the incoming ``traceparent`` alone, and the SDK is not involved in what is
left out:

- a new trace (the gateway's request without a ``traceparent``) is decided on a drawn trace id exactly as the
  SDK's ``TraceIdRatioBased`` would; left out, it is ``NOT_RECORDED`` and sends **no** trace context on: the
  calls it causes carry none;
- a call that reaches a service without a ``traceparent`` is not recorded either (``decide(..., root=False)``):
  traces start where work enters the platform, so a service does not start one of its own for a call whose
  caller did not record it (the task worker likewise for a task created outside a recorded trace);
- a not-sampled ``traceparent`` that came from outside (a client's) is kept in a context variable and forwarded
  as it came on outgoing calls (``pass_on``).

Why no unsampled ``traceparent`` of our own making: drawing, formatting, sending and parsing it on every call
cost ~25 µs of CPU per read across the gateway and the agents service (``bench/edge_overhead.py``, 2026-12-06),
for a trace id that nothing records. Before, the SDK's non-recording spans (extract, sampler, span and context
objects, inject) cost ~0.1 ms per read.
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

from sutazai_runtime.settings import TelemetrySettings

log = logging.getLogger(__name__)

# None: tracing is off in this process (the hot paths test only this).
TRACER: trace.Tracer | None = None
_provider: Any = None
# Set by ``configure_tracing`` for a parent-based sampler: the root sampler's bound on the low 64 bits of a trace
# id (sampled below it; 2**64 = always, 0 = never). None: every decision is the SDK's (no passing on).
_ROOT_BOUND: int | None = None
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# The traceparent of the not-recorded work this task is doing, forwarded as it is on its outgoing calls ("": not
# recorded, nothing to forward; None: no decision made here, the SDK's current span decides).
_PASSED: contextvars.ContextVar[str | None] = contextvars.ContextVar("sutazai_passed_traceparent", default=None)
# The trace id ``decide`` drew for a new recorded trace, taken by the SDK's id generator for that one span.
_PRESET_TRACE_ID: contextvars.ContextVar[int] = contextvars.ContextVar("sutazai_preset_trace_id", default=0)


def configure_tracing(service: str, settings: TelemetrySettings) -> bool:
    """Install the SDK and the OTLP exporter when ``settings`` names an endpoint; True when tracing is on.
    Spans are batched and exported in a thread of the SDK; pending ones are flushed at exit."""
    global _provider
    if not settings.enabled:
        use_tracer(None)
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

    ratio = TraceIdRatioBased(settings.ratio)
    roots: dict[str, Sampler] = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "traceidratio": ratio}
    kind = settings.sampler.removeprefix("parentbased_")
    parent_based = settings.sampler.startswith("parentbased_")
    sampler = ParentBased(roots[kind]) if parent_based else roots[kind]
    resource = Resource.create({"service.name": f"sutazai-{service}"})
    provider = TracerProvider(resource=resource, sampler=sampler, id_generator=preset_trace_ids())
    endpoint = settings.otlp_endpoint.strip()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=endpoint, insecure=endpoint.startswith("http://"), timeout=5)))
    trace.set_tracer_provider(provider)
    _provider = provider
    bound = {"always_on": 1 << 64, "always_off": 0, "traceidratio": ratio.bound}[kind]
    use_tracer(provider.get_tracer("sutazai"), root_bound=bound if parent_based else None)
    log.info("tracing: spans exported over OTLP", extra={"otlp_endpoint": endpoint, "sampler": settings.sampler,
                                                         "ratio": settings.ratio})
    return True


def use_tracer(tracer: trace.Tracer | None, *, root_bound: int | None = None) -> None:
    """Make ``tracer`` the platform's (None: tracing off). ``root_bound``: the tracer's provider samples with
    ``ParentBased`` over a root sampler that keeps a trace id whose low 64 bits are below it, and makes its ids
    with ``preset_trace_ids()``; ``decide`` may then settle what is not recorded without the SDK."""
    global TRACER, _ROOT_BOUND
    TRACER = tracer
    _ROOT_BOUND = root_bound if tracer is not None else None


def preset_trace_ids() -> Any:
    """The SDK's random id generator, except that a new trace takes the id ``decide`` drew and had sampled."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetTraceIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            preset = _PRESET_TRACE_ID.get()
            return preset if preset else super().generate_trace_id()

    return PresetTraceIds()


# --- deciding at the edge -------------------------------------------------------------------------------------

class Decision(NamedTuple):
    """What ``decide`` settled: ``passed`` (not recorded, no span to make: the traceparent to forward, or "" for
    none) or, to record, ``trace_id`` (a new trace's id the sampler was asked about; 0 when the SDK decides alone)."""

    passed: str | None = None
    trace_id: int = 0


_SDK = Decision()
NOT_RECORDED = Decision(passed="")


def decide(traceparent: str | None, *, root: bool = True) -> Decision:
    """Settle the work an incoming request or call starts, from its ``traceparent`` (None: it carries none).
    ``root``: work without a ``traceparent`` may start a trace (the gateway's requests); False: it is not recorded
    (a service's incoming calls: their caller did not record them)."""
    bound = _ROOT_BOUND
    if bound is None:
        return _SDK
    if traceparent is not None:
        found = _TRACEPARENT.fullmatch(traceparent)
        if found is None or found[1] == "0" * 32 or found[2] == "0" * 16:
            return _SDK  # invalid: the SDK starts a new trace as it does for none (rare)
        return _SDK if int(found[3], 16) & 1 else Decision(passed=traceparent)
    if not root:
        return NOT_RECORDED
    low = random.getrandbits(64)  # the bits the ratio sampler looks at: the rest only for a recorded trace
    if low < bound:
        return Decision(trace_id=(random.getrandbits(64) << 64 | low) or 1)
    return NOT_RECORDED


def start_span(decision: Decision, name: str, **kwargs: Any) -> Any:
    """``TRACER.start_span`` for work ``decide`` sent to the SDK (a new trace takes the drawn id)."""
    assert TRACER is not None
    if not decision.trace_id:
        return TRACER.start_span(name, **kwargs)
    token = _PRESET_TRACE_ID.set(decision.trace_id)
    try:
        return TRACER.start_span(name, **kwargs)
    finally:
        _PRESET_TRACE_ID.reset(token)


def passing(traceparent: str) -> contextvars.Token[str | None]:
    """Mark the current task's work as not recorded, forwarding ``traceparent`` (undo with ``stop_passing``)."""
    return _PASSED.set(traceparent)


def stop_passing(token: contextvars.Token[str | None]) -> None:
    _PASSED.reset(token)


def pass_on() -> str | None:
    """The ``traceparent`` an outgoing call carries when the current work is not recorded ("" for none; no client
    span to make: with a parent-based sampler nothing under it records either); None: use the SDK."""
    if _ROOT_BOUND is None:
        return None
    passed = _PASSED.get()
    if passed is not None:
        return passed
    context = trace.get_current_span().get_span_context()
    if context.is_valid and not context.trace_flags.sampled:
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-00"
    return None


def traceparent_of(metadata: Iterable[Any] | None) -> str | None:
    """The ``traceparent`` value of gRPC invocation metadata, if any."""
    for key, value in metadata or ():
        if key == "traceparent":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


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


def with_trace_metadata(metadata: Sequence[tuple[str, str]] | None, passed: str | None = None
                        ) -> Sequence[tuple[str, str]] | None:
    """``metadata`` plus the trace context of an outgoing call: ``passed`` (``pass_on()``'s value: the work is
    not recorded, its ``traceparent`` goes on as it came; "": nothing to add) or else the current span's,
    through the propagator."""
    if passed is not None:
        return (*(metadata or ()), ("traceparent", passed)) if passed else metadata
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
    """(trace id, span id) of the current span in hex, or None (tracing off, no span, or not sampled)."""
    if TRACER is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None  # nothing recorded: no ids to follow (a task's trace_id names a trace that exists)
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class TraceIdsFilter(logging.Filter):
    """Puts ``trace_id`` and ``span_id`` on every log record made inside a span (tracing on only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if TRACER is not None:
            ids = current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True
