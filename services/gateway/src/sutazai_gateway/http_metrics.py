"""Prometheus metrics of every HTTP request, per route template: a pure ASGI middleware (no
``BaseHTTPMiddleware``, which runs the app in a task of its own per request).

``sutazai_http_request_seconds{method,route,status}`` (a histogram: its ``_count`` is the request count) and
``sutazai_http_in_flight``. The route is the matched template (``/api/v1/agents/{agent_id}``), never the raw
path, so labels stay few; a request no route matched is ``unmatched``. A streamed response (SSE) counts until
its last byte. Per request: one ``perf_counter`` pair, a dict look-up for the cached histogram child, its
``observe``, and the in-flight gauge up and down. With several gateway processes these live in
prometheus_client's multi-process files (``PROMETHEUS_MULTIPROC_DIR``) and are summed across processes.

With ``traced`` (tracing on) the same layer settles the request's trace (``http_tracing``): a request the
sampler leaves out runs with that decision in its context (no span, no trace context sent on), a recorded one
inside its SERVER span. One layer for both, not a second middleware: a layer is a coroutine frame every
resumption of the request passes through, and a wrapper of every message sent.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sutazai_runtime import telemetry

from sutazai_gateway import http_tracing

REQUEST_SECONDS = Histogram(
    "sutazai_http_request_seconds", "HTTP requests by route template and status, until the last byte",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
IN_FLIGHT = Gauge("sutazai_http_in_flight", "HTTP requests being served", multiprocess_mode="livesum")
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, app: ASGIApp, *, traced: bool = False) -> None:
        self.app = app
        self._traced = traced
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escaped every handler

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            if not self._traced or telemetry.TRACER is None:
                await self.app(scope, receive, observed_send)
            elif (decision := http_tracing.decide_request(scope)).passed is None:
                await http_tracing.serve_recorded(self.app, scope, receive, observed_send, decision, lambda: status)
            else:  # not recorded: no span here or under it, the decision passed on
                token = telemetry.passing(decision.passed)
                try:
                    await self.app(scope, receive, observed_send)
                finally:
                    telemetry.stop_passing(token)
        finally:
            elapsed = time.perf_counter() - started
            IN_FLIGHT.dec()
            route = scope.get("route")
            method = scope["method"]
            key = (method if method in _METHODS else "OTHER", getattr(route, "path", None) or UNMATCHED, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = REQUEST_SECONDS.labels(*key)
            child.observe(elapsed)
