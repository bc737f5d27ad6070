"""Dependency checks: each answers "does it respond, and how fast", bounded by a timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import asyncpg
import nats.aio.client
import redis.asyncio as redis

from sutazai_runtime.logging import redact_url

Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Probe:
    """A named check of one dependency; ``target`` is shown to operators, so it never holds a secret."""

    name: str
    target: str
    check: Check


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    target: str
    healthy: bool
    latency_ms: float
    error: str = ""


async def run_probe(probe: Probe, timeout_s: float) -> ProbeResult:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await probe.check()
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except Exception as exc:  # any failure of the dependency is a reading, not a crash
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        error = ""
    latency_ms = (time.perf_counter() - start) * 1000
    return ProbeResult(probe.name, probe.target, not error, round(latency_ms, 3), error[:500])


async def run_probes(probes: list[Probe], timeout_s: float) -> list[ProbeResult]:
    return list(await asyncio.gather(*(run_probe(p, timeout_s) for p in probes)))


def postgres_probe(pool: asyncpg.Pool, url: str) -> Probe:
    async def check() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    return Probe("postgres", redact_url(url), check)


def redis_probe(client: redis.Redis, url: str) -> Probe:
    async def check() -> None:
        await client.ping()

    return Probe("redis", redact_url(url), check)


def nats_probe(nc: nats.aio.client.Client, url: str) -> Probe:
    async def check() -> None:
        if not nc.is_connected:
            raise ConnectionError("not connected")
        await nc.flush(timeout=5)  # a PING/PONG round trip; the probe's own timeout bounds it

    return Probe("nats", redact_url(url), check)


def http_probe(name: str, session: aiohttp.ClientSession, url: str) -> Probe:
    """GET ``url``; any 2xx is healthy."""

    async def check() -> None:
        async with session.get(url) as response:
            if response.status >= 300:
                raise ConnectionError(f"HTTP {response.status}")

    return Probe(name, redact_url(url), check)
