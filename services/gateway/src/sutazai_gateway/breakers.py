"""A circuit breaker per upstream service, applied to every call on its gRPC channel.

closed: calls pass; ``failure_threshold`` consecutive failures (UNAVAILABLE, DEADLINE_EXCEEDED,
INTERNAL, UNKNOWN) open it. open: calls fail at once with UNAVAILABLE (the gateway answers 503 with
Retry-After) until ``recovery_timeout_s`` has passed. half_open: one probe call passes; its success
closes the breaker, its failure opens it again. Health and diagnostics calls bypass the breaker, so
the health monitor keeps seeing the real service.

Why not a library: the breaker must sit inside a grpc.aio client interceptor and report the
original API's statistics; the logic is a small state machine, kept here without I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import grpc

State = Literal["closed", "open", "half_open"]
FAILURES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})
DOMAIN_ERROR_KEY = "sutazai-error"
_BYPASS = ("/grpc.health.v1.Health/", "/sutazai.common.v1.Diagnostics/", "/grpc.reflection.")


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


def _open_error(breaker: CircuitBreaker, exc: BreakerOpenError) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
        grpc.aio.Metadata(("retry-after", str(breaker.retry_after_s()))), details=str(exc),
    )


class BreakerInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def _bypass(self, details: grpc.aio.ClientCallDetails) -> bool:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        return method.startswith(_BYPASS)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if self._bypass(details):
            return await continuation(details, request)
        try:
            self.breaker.before_call()
        except BreakerOpenError as exc:
            raise _open_error(self.breaker, exc) from exc
        call = await continuation(details, request)
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            # A service that tags an error as its own domain error (e.g. chat: "no backend serves this
            # model") is answering: that is not a reason to stop calling it.
            own_error = any(key == DOMAIN_ERROR_KEY for key, _ in (exc.trailing_metadata() or ()))
            self.breaker.record(grpc.StatusCode.OK if own_error else exc.code())
            raise
        except BaseException:
            self.breaker.record(grpc.StatusCode.CANCELLED)  # the caller went away: not the service's fault
            raise
        self.breaker.record(grpc.StatusCode.OK)
        return response

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        # Streams are gated but not judged: a long stream's end says little about the service's health.
        if not self._bypass(details) and self.breaker.rejects_now():
            self.breaker.rejected_requests += 1
            raise _open_error(self.breaker, BreakerOpenError(f"circuit breaker for {self.breaker.name} is open"))
        return await continuation(details, request)
