"""A circuit breaker per backend: closed → open after ``failures`` consecutive failures → half-open after
``reset_s`` (one probe call at a time) → closed on its success, open again on its failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self.consecutive_failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.total = self.failed = 0

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return "open"

    def available(self) -> bool:
        """May a call go to this backend now (without taking the half-open probe slot)?"""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._probing)

    def acquire(self) -> bool:
        """Take permission for one call; in half-open only one probe at a time gets it."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self.total += 1
        self.consecutive_failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self.total += 1
        self.failed += 1
        self.consecutive_failures += 1
        if self._probing or self.consecutive_failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release(self) -> None:
        """The call ended without a verdict on the backend (e.g. the client cancelled)."""
        self._probing = False

    def retry_after_s(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_s - (self._clock() - self._opened_at))
