"""A circuit breaker: closed / open / half-open. No I/O; the clock is injected (tests pass a fake one).

closed: calls pass. It opens on ``consecutive_failures`` failures in a row, or when the failure rate over
the rolling window (``window_s``, in one-second buckets) reaches ``failure_rate`` with at least
``minimum_requests`` calls in the window. open: calls are refused for ``open_s``. half-open: at most
``half_open_probes`` calls at a time pass; a probe's success closes the breaker, its failure opens it
again. A call that ends without a verdict (the caller cancelled) frees its probe slot and counts as
nothing.

Why not a library (pybreaker, aiobreaker, purgatory): none has a rolling-window failure rate with a
minimum volume *and* bounded half-open probes *and* a no-verdict outcome; the logic is a small state
machine kept here without I/O, shared by the gateway, the services' clients and chat's model backends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

State = Literal["closed", "open", "half_open"]
Transition = Callable[["CircuitBreaker", str, str], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    minimum_requests: int = 20
    window_s: int = 10
    open_s: float = 30.0
    half_open_probes: int = 1


class CircuitBreaker:
    def __init__(self, name: str, policy: BreakerPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic, on_transition: Transition | None = None) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._on_transition = on_transition
        self._state: State = "closed"
        self._opened_at = 0.0
        self._probes = 0
        # rolling window: bucket second -> [successes, failures]
        self._window: dict[int, list[int]] = {}
        self.consecutive_failures = 0
        self.total_requests = 0
        self.successful_requests = 0
        self.failed_requests = 0
        self.rejected_requests = 0
        self.opened_count = 0
        self.last_failure_time: datetime | None = None
        self.last_success_time: datetime | None = None

    # --- state --------------------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.policy.open_s:
            self._move("half_open")
        return self._state

    def _move(self, new: State) -> None:
        old, self._state = self._state, new
        if new == "open":
            self._opened_at = self._clock()
            self.opened_count += 1
        if new != "half_open":
            self._probes = 0
        if new == "closed":
            self._window.clear()
            self.consecutive_failures = 0
        log.log(logging.WARNING if new == "open" else logging.INFO,
                "circuit breaker %s: %s -> %s", self.name, old, new,
                extra={"breaker": self.name, "from": old, "to": new})
        if self._on_transition is not None:
            self._on_transition(self, old, new)

    def available(self) -> bool:
        """Would a call pass now (without taking a half-open probe slot)?"""
        state = self.state
        return state == "closed" or (state == "half_open" and self._probes < self.policy.half_open_probes)

    def acquire(self) -> bool:
        """Permission for one call; False counts as a rejected request."""
        state = self.state
        if state == "closed":
            self.total_requests += 1
            return True
        if state == "half_open" and self._probes < self.policy.half_open_probes:
            self._probes += 1
            self.total_requests += 1
            return True
        self.rejected_requests += 1
        return False

    # --- verdicts -----------------------------------------------------------------------------------------
    def _bucket(self) -> list[int]:
        now = int(self._clock())
        bucket = self._window.get(now)
        if bucket is None:
            horizon = now - self.policy.window_s
            for second in [s for s in self._window if s <= horizon]:
                del self._window[second]
            bucket = self._window[now] = [0, 0]
        return bucket

    def window_counts(self) -> tuple[int, int]:
        """(successes, failures) over the rolling window."""
        horizon = int(self._clock()) - self.policy.window_s
        ok = sum(b[0] for s, b in self._window.items() if s > horizon)
        bad = sum(b[1] for s, b in self._window.items() if s > horizon)
        return ok, bad

    def failure_rate(self) -> float:
        ok, bad = self.window_counts()
        return bad / (ok + bad) if ok + bad else 0.0

    def record_success(self) -> None:
        self.successful_requests += 1
        self.consecutive_failures = 0
        self.last_success_time = datetime.now(UTC)
        self._bucket()[0] += 1
        if self.state == "half_open":
            self._move("closed")

    def record_failure(self) -> None:
        self.failed_requests += 1
        self.consecutive_failures += 1
        self.last_failure_time = datetime.now(UTC)
        self._bucket()[1] += 1
        state = self.state
        if state == "half_open":
            self._move("open")
        elif state == "closed":
            ok, bad = self.window_counts()
            tripped_rate = ok + bad >= self.policy.minimum_requests and bad / (ok + bad) >= self.policy.failure_rate
            if self.consecutive_failures >= self.policy.consecutive_failures or tripped_rate:
                self._move("open")

    def release(self) -> None:
        """The call ended without a verdict (cancelled by its caller): only its probe slot is freed."""
        if self._state == "half_open" and self._probes > 0:
            self._probes -= 1

    def reset(self) -> None:
        if self._state != "closed":
            self._move("closed")
        self.consecutive_failures = 0

    # --- reading ------------------------------------------------------------------------------------------
    def retry_after_s(self) -> float:
        """Seconds until a probe may pass (0 when calls pass now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.policy.open_s - (self._clock() - self._opened_at))

    def next_probe_at(self) -> datetime | None:
        if self.state != "open":
            return None
        return datetime.fromtimestamp(time.time() + self.retry_after_s(), UTC)

    def snapshot(self) -> dict[str, Any]:
        """The original API's fields, then the window's failure rate and the next probe time."""
        done = self.successful_requests + self.failed_requests
        ok, bad = self.window_counts()
        next_probe = self.next_probe_at()
        return {
            "name": self.name, "state": self.state, "failure_threshold": self.policy.consecutive_failures,
            "recovery_timeout": self.policy.open_s, "total_requests": self.total_requests,
            "successful_requests": self.successful_requests, "failed_requests": self.failed_requests,
            "rejected_requests": self.rejected_requests, "consecutive_failures": self.consecutive_failures,
            "success_rate": round(100.0 * self.successful_requests / done, 2) if done else 100.0,
            "last_failure_time": self.last_failure_time.isoformat() if self.last_failure_time else None,
            "last_success_time": self.last_success_time.isoformat() if self.last_success_time else None,
            "window_s": self.policy.window_s, "window_requests": ok + bad,
            "window_failure_rate": round(bad / (ok + bad), 4) if ok + bad else 0.0,
            "failure_rate_threshold": self.policy.failure_rate, "minimum_requests": self.policy.minimum_requests,
            "half_open_probes": self.policy.half_open_probes,
            "next_probe_time": next_probe.isoformat() if next_probe else None,
        }
