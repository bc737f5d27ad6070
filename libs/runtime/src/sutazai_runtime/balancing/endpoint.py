"""One instance as a balancer sees it: load (in flight), latency (peak EWMA) and its ejection state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Finagle's defaults: the moving average decays over ten seconds; an instance never seen starts at a
# guess that is high enough to be tried but not preferred over a known fast one.
DECAY_S = 10.0
DEFAULT_COST_S = 0.005


@dataclass(eq=False, slots=True)
class Endpoint:
    id: str
    target: str
    weight: int = 1
    in_flight: int = 0
    ewma_s: float = DEFAULT_COST_S
    _stamp: float = 0.0  # the last observation
    busy_since: float = 0.0  # the later of its last completion and the moment it went from idle to busy
    # outlier ejection
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    ejected_by_check: bool = False  # a failed active health check ejected it (a passing one ends that)
    # per-strategy scratch (smooth weighted round robin)
    current_weight: int = 0
    # what the I/O layer hangs on it (channel, stub, cached method callables, metrics children)
    handle: Any = field(default=None, repr=False)

    def start(self, now: float) -> None:
        """A call (attempt) is sent to it."""
        if not self.in_flight:
            self.busy_since = now
        self.in_flight += 1

    def observe(self, latency_s: float, now: float) -> None:
        """Peak EWMA: a slower sample than the average replaces it at once; faster ones decay it in."""
        if latency_s > self.ewma_s:
            self.ewma_s = latency_s
        else:
            elapsed = max(0.0, now - self._stamp)
            w = math.exp(-elapsed / DECAY_S)
            self.ewma_s = self.ewma_s * w + latency_s * (1.0 - w)
        self._stamp = now
        self.busy_since = now

    def cost(self, now: float | None = None) -> float:
        """Peak EWMA latency times the load the next call would add (Finagle's ``(pending + 1) * ewma``).

        With ``now``: the estimate decays with the time since its last observation (Finagle reads it that way,
        so an instance that was slow once is tried again later rather than never), and an instance with calls
        outstanding that has completed nothing for longer than its estimate is taken to be as slow as that
        silence. The second is ours: a stalled process (SIGSTOP, a long GC pause) completes nothing, so its
        plain estimate would not move until the stall ends, and every call sent meanwhile waits it out."""
        latency = self.ewma_s
        if now is not None:
            elapsed = now - self._stamp
            if elapsed > 0:
                latency *= math.exp(-elapsed / DECAY_S)
            if self.in_flight:
                latency = max(latency, now - self.busy_since)
        return latency * (self.in_flight + 1) / self.weight

    def ejected(self, now: float) -> bool:
        return self.ejected_until > now
