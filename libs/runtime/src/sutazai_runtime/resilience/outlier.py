"""Per-instance outlier ejection (Envoy's consecutive-failure detector). No I/O.

An endpoint failing ``consecutive_failures`` times in a row is skipped for ``base_ejection_s`` x (its
number of ejections), capped at ``max_ejection_s``. Never every endpoint: at most
``max_ejected_fraction`` of them (and always at least one left in rotation). An endpoint that serves
well long enough after its ejection ended has its ejection count decay by one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sutazai_runtime.balancing.endpoint import Endpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    consecutive_failures: int = 5
    base_ejection_s: float = 30.0
    max_ejection_s: float = 300.0
    max_ejected_fraction: float = 0.5


class OutlierDetector:
    def __init__(self, name: str, policy: OutlierPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or OutlierPolicy()
        self.total_ejections = 0

    def success(self, endpoint: Endpoint, now: float) -> None:
        endpoint.consecutive_failures = 0
        if endpoint.ejections and now - endpoint.ejected_until > self.policy.base_ejection_s:
            endpoint.ejections -= 1

    def failure(self, endpoint: Endpoint, now: float, endpoints: Sequence[Endpoint]) -> bool:
        """Count a failure; True when it ejected the endpoint."""
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures < self.policy.consecutive_failures or endpoint.ejected(now):
            return False
        return self.eject(endpoint, now, endpoints, f"{self.policy.consecutive_failures} consecutive failures")

    def eject(self, endpoint: Endpoint, now: float, endpoints: Sequence[Endpoint], reason: str,
              *, by_check: bool = False) -> bool:
        """Take ``endpoint`` out of rotation for ``base_ejection_s`` x its ejections (capped), unless that would
        eject more than the allowed fraction or the last ones. ``by_check``: a failed active health check
        ejected it, so the next passing check ends the ejection (``check_passed``)."""
        if endpoint.ejected(now):
            return False
        ejected = sum(1 for e in endpoints if e.ejected(now))
        allowed = max(1, int(len(endpoints) * self.policy.max_ejected_fraction))
        if ejected + 1 > allowed or ejected + 1 >= len(endpoints):
            return False  # never take the last ones out of rotation
        endpoint.ejections += 1
        period = min(self.policy.max_ejection_s, self.policy.base_ejection_s * endpoint.ejections)
        endpoint.ejected_until = now + period
        endpoint.ejected_by_check = by_check
        endpoint.consecutive_failures = 0
        self.total_ejections += 1
        log.warning("ejected %s instance %s for %.0f s (%s)", self.name, endpoint.id, period, reason,
                    extra={"upstream": self.name, "instance": endpoint.id, "reason": reason})
        return True

    def check_passed(self, endpoint: Endpoint, now: float) -> bool:
        """A passing active health check ends an ejection that a failing one started (Envoy's
        ``successful_active_health_check_uneject_host``, limited to check ejections: an instance that answers
        its health check but fails calls stays out for its period). True when it un-ejected."""
        if endpoint.ejected(now) and endpoint.ejected_by_check:
            endpoint.ejected_until = now
            endpoint.ejected_by_check = False
            log.info("%s instance %s is back in rotation (its health check passes)", self.name, endpoint.id)
            return True
        return False
