"""Keeps the health picture current: a background round every ``interval_s`` for ``/health``
(which must answer without calling anything), and fresh rounds on demand for the detailed view.

One round at a time: a request for a round while one is running joins it (its results are at most one
round's deadline old), so many clients polling the detailed view do not multiply the checks."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sutazai_runtime.probes import Probe

from sutazai_gateway.health_checks import check_all
from sutazai_gateway.health_tracker import CheckResult, HealthTracker
from sutazai_gateway.upstreams import Upstreams

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(self, upstreams: Upstreams, probes: list[Probe], *, timeout_s: float, interval_s: float) -> None:
        self.tracker = HealthTracker()
        self._upstreams = upstreams
        self._probes = probes
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self.last_round_at: datetime | None = None
        self.last_round_ms: float | None = None
        self._round: asyncio.Future[list[CheckResult]] | None = None

    async def check_now(self) -> list[CheckResult]:
        """A fresh round, or the one already running."""
        if self._round is None or self._round.done():
            self._round = asyncio.ensure_future(self._check())
        # shielded: a client that goes away does not cancel the round others wait on
        return await asyncio.shield(self._round)

    async def _check(self) -> list[CheckResult]:
        start = time.perf_counter()
        results = await check_all(self._upstreams, self._probes, self._timeout_s)
        now = datetime.now(UTC)
        changed = []
        for result in results:
            before = self.tracker.components.get(result.name)
            previous = before.status if before else None
            self.tracker.record(result, now)
            if previous is not None and previous != result.status:
                changed.append(f"{result.name}: {previous} -> {result.status}")
        if changed:
            log.warning("health changed: %s", "; ".join(changed))
        self.last_round_at = now
        self.last_round_ms = round((time.perf_counter() - start) * 1000, 3)
        return results

    async def run(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:  # a bug in one round must not stop the monitor
                log.exception("health round failed")
            await asyncio.sleep(self._interval_s)
