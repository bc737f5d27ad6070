"""The span of one call to a model server (OpenTelemetry GenAI conventions), made only while tracing is on.

Under it, nothing else: the official model clients (openai, ollama) are not instrumented, which keeps httpx
instrumentation off the process; the span covers the whole call, a stream until its last token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry.trace import SpanKind
from sutazai_runtime import telemetry


@contextlib.contextmanager
def model_span(operation: str, model: str, backend: str) -> Iterator[Any]:
    """A CLIENT span ``<operation> <model>``; yields the span (None while tracing is off)."""
    tracer = telemetry.TRACER
    if tracer is None or telemetry.pass_on() is not None:  # off, or the call is not recorded
        yield None
        return
    with tracer.start_as_current_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": operation, "gen_ai.request.model": model, "sutazai.backend": backend}) as span:
        yield span


def record_usage(span: Any, prompt_tokens: int | None, completion_tokens: int | None) -> None:
    if span is not None:
        span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens or 0)
        span.set_attribute("gen_ai.usage.output_tokens", completion_tokens or 0)
