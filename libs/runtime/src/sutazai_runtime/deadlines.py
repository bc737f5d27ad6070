"""Deadlines passed on: a service calling another within a call of its own sends no more than the time its
caller has left.

``serve`` installs ``IncomingDeadline``, a server interceptor that records each call's deadline
(``context.time_remaining()``) in a context variable for the call's task; ``Upstream`` (the one client
layer) reads it and sends ``min(its own deadline, what is left of the incoming one)``. Calls made outside a
served call (task workers, the gateway) see no incoming deadline and use their own.

The interceptor also counts the calls each instance serves (``sutazai_grpc_server_calls_total``), the
per-instance view of where the balancers send traffic. Wrapped handlers are made once per method.
"""

from __future__ import annotations

import contextvars
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter

_INCOMING: contextvars.ContextVar[float | None] = contextvars.ContextVar("sutazai_incoming_deadline", default=None)

SERVED = Counter("sutazai_grpc_server_calls_total", "calls this instance served, by method", ["method"])


def incoming_deadline() -> float | None:
    """The ``time.monotonic()`` at which the served call this code runs in expires; None outside one (or when
    its caller set no deadline)."""
    return _INCOMING.get()


def remaining_s() -> float | None:
    """Seconds left of the incoming call's deadline (may be <= 0); None when there is none."""
    deadline = _INCOMING.get()
    return None if deadline is None else deadline - time.monotonic()


def _mark(context: grpc.aio.ServicerContext) -> None:
    left = context.time_remaining()
    # grpc reports a call without deadline as a huge remaining time, not None, in some versions
    _INCOMING.set(time.monotonic() + left if left is not None and left < 1e8 else None)


def _wrap_unary(inner: Callable[..., Awaitable[Any]], served: Any) -> Callable[..., Awaitable[Any]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        served.inc()
        _mark(context)
        return await inner(request, context)

    return behaviour


def _wrap_stream(inner: Callable[..., Any], served: Any) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(inner):
        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            served.inc()
            _mark(context)
            async for message in inner(request, context):
                yield message

        return generator
    return _wrap_unary(inner, served)  # a coroutine writing with context.write()


class IncomingDeadline(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Any, Any]] = {}  # method -> (its handler, the wrapped one)

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        cached = self._handlers.get(details.method)
        if cached is None or cached[0] is not handler:
            cached = self._handlers[details.method] = (handler, self._wrap(details.method, handler))
        return cached[1]

    @staticmethod
    def _wrap(method: str, handler: Any) -> Any:
        served = SERVED.labels(method)
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary, served))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=_wrap_stream(handler.unary_stream, served))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=_wrap_unary(handler.stream_unary, served))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=_wrap_stream(handler.stream_stream, served))
        return handler
