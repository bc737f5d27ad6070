"""A retry budget (Envoy's): retries in flight may be at most ``ratio`` of the requests in flight, but at
least ``min_concurrent``, so retries cannot multiply load on a failing upstream. No I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RetryBudget:
    ratio: float = 0.2
    min_concurrent: int = 3
    active_requests: int = 0
    active_retries: int = 0
    retries: int = 0
    exhausted: int = 0

    def can_retry(self) -> bool:
        allowed = max(self.min_concurrent, int(self.ratio * self.active_requests))
        if self.active_retries < allowed:
            return True
        self.exhausted += 1
        return False
