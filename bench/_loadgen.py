"""HTTP load generator for ``gateway_status.py`` when ``wrk`` is not installed.

``python bench/_loadgen.py URL --duration S --warmup S --connections N`` keeps N keep-alive connections busy
with GETs for warm-up + duration seconds and prints one JSON object: responses completed inside the measured
window, their rate, p50/p99 latency and the errors (non-200 answers and failed requests). It runs in its own
process so that it never shares an interpreter with the servers it measures, and under uvloop when available.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
REQUEST_TIMEOUT_S = 5.0


@dataclass
class Window:
    """The measured interval and what completed inside it."""

    start: float
    end: float
    latencies_s: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0

    def record(self, started: float, finished: float, ok: bool) -> None:
        if not self.start <= finished <= self.end:
            return
        self.latencies_s.append(finished - started)
        if ok:
            self.ok += 1
        else:
            self.errors += 1


async def _one_request(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _worker(session: aiohttp.ClientSession, url: str, window: Window) -> None:
    """Send GETs back to back until the window closes; every request is bounded by the session timeout."""
    while (started := time.perf_counter()) < window.end:
        ok = await _one_request(session, url)
        window.record(started, time.perf_counter(), ok)


async def generate(url: str, duration_s: float, warmup_s: float, connections: int,
                   headers: dict[str, str] | None = None) -> Window:
    now = time.perf_counter()
    window = Window(start=now + warmup_s, end=now + warmup_s + duration_s)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session,
        asyncio.timeout(warmup_s + duration_s + 2 * REQUEST_TIMEOUT_S),
    ):
        await asyncio.gather(*(_worker(session, url, window) for _ in range(connections)))
    return window


def percentile_ms(sorted_s: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted latencies in seconds, in milliseconds (NaN when there are none)."""
    if not sorted_s:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_s)))
    return sorted_s[rank - 1] * 1000.0


def summary(window: Window) -> dict[str, float | int]:
    latencies = sorted(window.latencies_s)
    duration = window.end - window.start
    return {
        "requests_per_s": window.ok / duration,
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
        "errors": window.errors,
        "responses": window.ok + window.errors,
        "duration_s": duration,
    }


def run(coroutine: Coroutine[Any, Any, Window]) -> Window:
    """Run on uvloop when it is installed (as the servers do), else on the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--header", action="append", default=[], help="'Name: value', sent on every request")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    if urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("the load generator only sends traffic to this machine (127.0.0.1)")

    cpu_before = os.times()
    window = run(generate(args.url, args.duration, args.warmup, args.connections, headers))
    cpu_after = os.times()
    result = summary(window)
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    result["client_cpu_percent"] = 100.0 * cpu_s / (args.warmup + args.duration)
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
