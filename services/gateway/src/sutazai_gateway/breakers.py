"""A circuit breaker per upstream service, applied to every call made through that upstream's stubs.

closed: calls pass; ``failure_threshold`` consecutive failures (UNAVAILABLE, DEADLINE_EXCEEDED,
INTERNAL, UNKNOWN) open it. open: calls fail at once with UNAVAILABLE (the gateway answers 503 with
Retry-After) until ``recovery_timeout_s`` has passed. half_open: one probe call passes; its success
closes the breaker, its failure opens it again. Health and diagnostics calls use the upstream's plain
stubs, which bypass the breaker, so the health monitor keeps seeing the real service.

The breaker wraps each stub method in line (``guarded_stub``), not as a grpc.aio client interceptor:
interceptors run every call in extra asyncio tasks, a large share of the gateway's CPU per request.

Why not a library: the breaker must report the original API's statistics and wrap grpc.aio calls;
the logic is a small state machine, kept here without I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

import grpc

State = Literal["closed", "open", "half_open"]
FAILURES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})
DOMAIN_ERROR_KEY = "sutazai-error"
T = TypeVar("T")


class BreakerOpenError(Exception):
    pass


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int = 5
    recovery_timeout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    consecutive_failures: int = 0
    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    rejected_requests: int = 0
    last_failure_time: datetime | None = None
    last_success_time: datetime | None = None
    _opened_at: float = 0.0
    _probe_in_flight: bool = field(default=False, repr=False)

    def retry_after_s(self) -> int:
        return max(1, int(self.recovery_timeout_s - (self.clock() - self._opened_at) + 0.999))

    def rejects_now(self) -> bool:
        """Open and still cooling down (used to gate streams, which are not judged)."""
        return self.state == "open" and self.clock() - self._opened_at < self.recovery_timeout_s

    def before_call(self) -> None:
        """Raise ``BreakerOpenError`` when the call must not go out."""
        if self.state == "open":
            if self.clock() - self._opened_at < self.recovery_timeout_s:
                self.rejected_requests += 1
                raise BreakerOpenError(f"circuit breaker for {self.name} is open; retry in {self.retry_after_s()} s")
            self.state = "half_open"
        if self.state == "half_open":
            if self._probe_in_flight:
                self.rejected_requests += 1
                raise BreakerOpenError(f"circuit breaker for {self.name} is probing; retry in 1 s")
            self._probe_in_flight = True
        self.total_requests += 1

    def record(self, code: grpc.StatusCode) -> None:
        if code in FAILURES:
            self.failed_requests += 1
            self.consecutive_failures += 1
            self.last_failure_time = datetime.now(UTC)
            if self.state == "half_open" or self.consecutive_failures >= self.failure_threshold:
                self.state = "open"
                self._opened_at = self.clock()
        else:
            self.successful_requests += 1
            self.consecutive_failures = 0
            self.last_success_time = datetime.now(UTC)
            self.state = "closed"
        self._probe_in_flight = False

    def reset(self) -> None:
        self.state = "closed"
        self.consecutive_failures = 0
        self._probe_in_flight = False

    def snapshot(self) -> dict[str, Any]:
        """The original API's shape for one breaker."""
        done = self.successful_requests + self.failed_requests
        return {
            "name": self.name, "state": self.state, "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout_s, "total_requests": self.total_requests,
            "successful_requests": self.successful_requests, "failed_requests": self.failed_requests,
            "rejected_requests": self.rejected_requests, "consecutive_failures": self.consecutive_failures,
            "success_rate": round(100.0 * self.successful_requests / done, 2) if done else 100.0,
            "last_failure_time": self.last_failure_time.isoformat() if self.last_failure_time else None,
            "last_success_time": self.last_success_time.isoformat() if self.last_success_time else None,
        }


def open_error(breaker: CircuitBreaker, exc: BreakerOpenError) -> grpc.aio.AioRpcError:
    """The error a refused call raises: UNAVAILABLE with the breaker's ``retry-after`` advice."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
        grpc.aio.Metadata(("retry-after", str(breaker.retry_after_s()))), details=str(exc),
    )


def is_domain_error(exc: grpc.aio.AioRpcError) -> bool:
    """A service that tags an error as its own domain error (e.g. chat: "no backend serves this model") is
    answering: that is not a reason to stop calling it."""
    return any(key == DOMAIN_ERROR_KEY for key, _ in (exc.trailing_metadata() or ()))


class GuardedUnary:
    """One unary-unary method of a stub, called through the breaker, with a default deadline.

    In line rather than a grpc.aio interceptor: an interceptor wraps every call in extra asyncio tasks
    (``InterceptedUnaryUnaryCall``), which cost more CPU than the rest of the gateway's work on a read."""

    __slots__ = ("_breaker", "_method", "_timeout_s")

    def __init__(self, method: grpc.aio.UnaryUnaryMultiCallable, breaker: CircuitBreaker, timeout_s: float) -> None:
        self._method = method
        self._breaker = breaker
        self._timeout_s = timeout_s

    async def __call__(self, request: Any, *, timeout: float | None = None, **kwargs: Any) -> Any:  # noqa: ASYNC109 - the gRPC deadline, as on a stub
        breaker = self._breaker
        try:
            breaker.before_call()
        except BreakerOpenError as exc:
            raise open_error(breaker, exc) from exc
        try:
            response = await self._method(request, timeout=self._timeout_s if timeout is None else timeout, **kwargs)
        except grpc.aio.AioRpcError as exc:
            breaker.record(grpc.StatusCode.OK if is_domain_error(exc) else exc.code())
            raise
        except BaseException:
            breaker.record(grpc.StatusCode.CANCELLED)  # the caller went away: not the service's fault
            raise
        breaker.record(grpc.StatusCode.OK)
        return response


class GuardedStream:
    """One unary-stream method: gated by the breaker but not judged (a long stream's end says little about
    the service's health), with a default deadline. A refusal raises at the call, before any read."""

    __slots__ = ("_breaker", "_method", "_timeout_s")

    def __init__(self, method: grpc.aio.UnaryStreamMultiCallable, breaker: CircuitBreaker, timeout_s: float) -> None:
        self._method = method
        self._breaker = breaker
        self._timeout_s = timeout_s

    def __call__(self, request: Any, *, timeout: float | None = None, **kwargs: Any) -> Any:
        breaker = self._breaker
        if breaker.rejects_now():
            breaker.rejected_requests += 1
            raise open_error(breaker, BreakerOpenError(f"circuit breaker for {breaker.name} is open"))
        return self._method(request, timeout=self._timeout_s if timeout is None else timeout, **kwargs)


def guarded_stub(stub_class: type[T], channel: grpc.aio.Channel, breaker: CircuitBreaker, timeout_s: float) -> T:
    """An object with the methods of ``stub_class(channel)``, each going through ``breaker``. Build it once
    per upstream and reuse it: a stub is cheap to call but not to make (one multicallable per method)."""
    raw = stub_class(channel)  # type: ignore[call-arg]
    guarded = _GuardedStub()
    for name, method in vars(raw).items():
        if isinstance(method, grpc.aio.UnaryUnaryMultiCallable):
            setattr(guarded, name, GuardedUnary(method, breaker, timeout_s))
        elif isinstance(method, grpc.aio.UnaryStreamMultiCallable):
            setattr(guarded, name, GuardedStream(method, breaker, timeout_s))
        else:  # client or bidirectional streaming: none of our upstreams has one yet
            raise TypeError(f"{stub_class.__name__}.{name}: only unary-unary and unary-stream calls are guarded")
    return cast(T, guarded)


class _GuardedStub:
    """The methods of one stub, as ``GuardedUnary`` / ``GuardedStream`` attributes."""
