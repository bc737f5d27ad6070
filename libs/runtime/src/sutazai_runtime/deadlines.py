"""Deadlines passed on: a service calling another within a call of its own sends no more than the time its
caller has left.

The handler wrapper that ``serve`` installs at registration (``grpc_observe``, which also keeps the per-method
metrics and spans) calls ``mark`` as each call starts: the call's deadline (``context.time_remaining()``) goes
into a context variable for the call's task; ``Upstream`` (the one client layer) reads it and sends
``min(its own deadline, what is left of the incoming one)``. Calls made outside a served call (task workers,
the gateway) see no incoming deadline and use their own. One wrapper, not a server interceptor of its own: an
interceptor is one more coroutine per call on every service's hot path.
"""

from __future__ import annotations

import contextvars
import time

import grpc

_INCOMING: contextvars.ContextVar[float | None] = contextvars.ContextVar("sutazai_incoming_deadline", default=None)


def incoming_deadline() -> float | None:
    """The ``time.monotonic()`` at which the served call this code runs in expires; None outside one (or when
    its caller set no deadline)."""
    return _INCOMING.get()


def remaining_s() -> float | None:
    """Seconds left of the incoming call's deadline (may be <= 0); None when there is none."""
    deadline = _INCOMING.get()
    return None if deadline is None else deadline - time.monotonic()


def mark(context: grpc.aio.ServicerContext) -> None:
    """Record the deadline of the served call this task runs (called by the handler wrapper)."""
    left = context.time_remaining()
    # grpc reports a call without deadline as a huge remaining time, not None, in some versions
    _INCOMING.set(time.monotonic() + left if left is not None and left < 1e8 else None)
