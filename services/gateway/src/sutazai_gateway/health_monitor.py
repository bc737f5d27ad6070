"""Keeps the health picture current: a background round every ``interval_s`` for ``/health``
(which must answer without calling anything), and fresh rounds on demand for the detailed view.

One round at a time: a caller that arrives while a round runs waits for that round, and a caller that
arrives within ``min_interval_s`` of the last round gets its picture. So anonymous callers of
``/api/v1/health/detailed`` cannot make the gateway contact every dependency once per request."""

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
    def __init__(self, upstreams: Upstreams, probes: list[Probe], *, timeout_s: float, interval_s: float,
                 min_interval_s: float = 1.0) -> None:
        self.tracker = HealthTracker()
        self._upstreams = upstreams
        self._probes = probes
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self.last_round_at: datetime | None = None
        self.last_round_ms: float | None = None
        self._min_interval_s = min_interval_s
        self._round: asyncio.Task[list[CheckResult]] | None = None
        self._round_ended = -float("inf")  # monotonic
        self.rounds = 0

    async def fresh(self) -> None:
        """A picture at most ``min_interval_s`` old: the last one, the round under way, or a new round."""
        if self._round is None and time.monotonic() - self._round_ended < self._min_interval_s:
            return
        await self.check_now()

    async def check_now(self) -> list[CheckResult]:
        """A round now, or the one already under way (whose end a cancelled waiter does not cancel)."""
        if self._round is None:
            self._round = asyncio.create_task(self._check())
            self._round.add_done_callback(self._ended)
        return await asyncio.shield(self._round)

    def _ended(self, _: asyncio.Task[list[CheckResult]]) -> None:
        self._round = None
        self._round_ended = time.monotonic()

    async def _check(self) -> list[CheckResult]:
        self.rounds += 1
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
