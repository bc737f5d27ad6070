"""Benchmark (a): a one-hop read through the gateway against the same gRPC call made directly.

``GET /api/v1/agents/{id}`` with an API key (authentication, discovery from the registry's watch, p2c peak-EWMA
balancing, breaker, deadline, JSON) against ``AgentService.GetAgent`` called straight on the agents instance's
port from this process, at 1 and at 32 requests in flight, in alternating rounds of the same run. Reports p50/p99
per target and what the gateway adds at p50 (goal: <= 1.0 ms at 1 in flight).

Then the open breaker: the mesh service is SIGKILLed, its breaker opened by five failing calls, and
``GET /api/v1/mesh/v2/services`` (a 503 refused before leaving the gateway) is measured at 1 in flight against
``GET /api/v1/status`` (no hop at all) in alternating rounds (goal: the 503 in <= 50 ms at p99).

    .venv/bin/python bench/mesh_hop.py [--requests 2000] [--rounds 3]

Starts its own platform on free ports (``python -m sutazai_stack run --free-ports``); traffic stays on 127.0.0.1.
Writes ``bench/results/mesh_hop.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import grpc
from _platform import existing_or_new, run_benchmark, say, signed_metadata
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "mesh_hop.json"
AGENT_ID = "summarizer"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run_loops(call, in_flight: int, requests: int) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    remaining = [requests]

    async def loop() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(in_flight)))
    return latencies, len(latencies) / (time.perf_counter() - started)


async def measure(url: str, key: str, agents_port: int, requests: int, rounds: int,
                  metadata: tuple[tuple[str, str], ...]) -> dict[str, object]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{agents_port}")
    stub = agents_pb2_grpc.AgentServiceStub(channel)
    request = agents_pb2.GetAgentRequest(id=AGENT_ID)
    session = aiohttp.ClientSession(headers={"X-API-Key": key})

    async def direct() -> None:
        await stub.GetAgent(request, metadata=metadata, timeout=10)

    async def gateway() -> None:
        async with session.get(f"{url}/api/v1/agents/{AGENT_ID}") as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

    for call in (direct, gateway):  # warm both paths (connections, caches, the balancer's EWMA)
        await run_loops(call, 4, 200)
    results: dict[str, object] = {}
    for in_flight in (1, 32):
        per: dict[str, dict[str, list[float]]] = {"direct": {"p50": [], "p99": [], "rps": []},
                                                  "gateway": {"p50": [], "p99": [], "rps": []}}
        for r in range(rounds):
            for name, call in (("direct", direct), ("gateway", gateway)) if r % 2 == 0 else (
                    ("gateway", gateway), ("direct", direct)):
                latencies, rps = await run_loops(call, in_flight, requests)
                per[name]["p50"].append(pct(latencies, 0.50))
                per[name]["p99"].append(pct(latencies, 0.99))
                per[name]["rps"].append(rps)
        summary = {name: {k: round(statistics.median(v), 3) for k, v in m.items()} for name, m in per.items()}
        summary["gateway_adds_p50_ms"] = round(summary["gateway"]["p50"] - summary["direct"]["p50"], 3)  # type: ignore[index]
        summary["gateway_rps_ratio"] = round(summary["gateway"]["rps"] / summary["direct"]["rps"], 3)  # type: ignore[index]
        results[f"in_flight_{in_flight}"] = summary
        say(f"{in_flight:>2} in flight: direct p50 {summary['direct']['p50']:.2f} ms p99 {summary['direct']['p99']:.2f}"
            f" ms {summary['direct']['rps']:.0f}/s | gateway p50 {summary['gateway']['p50']:.2f} ms p99 "
            f"{summary['gateway']['p99']:.2f} ms {summary['gateway']['rps']:.0f}/s | gateway adds "
            f"{summary['gateway_adds_p50_ms']:.2f} ms at p50")
    await session.close()
    await channel.close()
    return results


async def measure_open_breaker(url: str, key: str, mesh_pid: int, requests: int, rounds: int) -> dict[str, object]:
    session = aiohttp.ClientSession(headers={"X-API-Key": key})
    os.kill(mesh_pid, signal.SIGKILL)
    opened = False
    for _ in range(50):  # until the breaker is open (5 consecutive failures by default)
        async with session.get(f"{url}/api/v1/mesh/v2/services") as response:
            body = await response.read()
        if response.status == 503 and b"circuit breaker for mesh is open" in body:
            opened = True
            break
    if not opened:
        raise RuntimeError("the mesh breaker did not open")

    def getter(path: str, expected: int):  # type: ignore[no-untyped-def]
        async def get() -> None:
            async with session.get(url + path) as response:
                await response.read()
                if response.status != expected:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
        return get

    targets = (("open_breaker_503", getter("/api/v1/mesh/v2/services", 503)),
               ("status_no_hop", getter("/api/v1/status", 200)))
    per: dict[str, dict[str, list[float]]] = {name: {"p50": [], "p99": []} for name, _ in targets}
    for r in range(rounds):
        for name, call in targets if r % 2 == 0 else tuple(reversed(targets)):
            latencies, _ = await run_loops(call, 1, requests)
            per[name]["p50"].append(pct(latencies, 0.50))
            per[name]["p99"].append(pct(latencies, 0.99))
    await session.close()
    summary = {name: {k: round(statistics.median(v), 3) for k, v in m.items()} for name, m in per.items()}
    say(f"open breaker: 503 p50 {summary['open_breaker_503']['p50']:.2f} ms p99 "
        f"{summary['open_breaker_503']['p99']:.2f} ms | /api/v1/status p50 {summary['status_no_hop']['p50']:.2f} ms "
        f"p99 {summary['status_no_hop']['p99']:.2f} ms")
    return summary


def benchmark(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    # the API cache off: the read through the gateway must cross its hop, as the direct call does
    with existing_or_new(args.home, {"SUTAZAI_DATABASE_NAME": "meshbench",
                                     "SUTAZAI_GATEWAY_API_CACHE_TTL_S": "0"}) as stack:
        services = json.loads((stack.home / "run" / "stack.json").read_text())["services"]
        results = asyncio.run(measure(stack.url, stack.admin_key, services["agents"]["port"], args.requests,
                                      args.rounds, signed_metadata(stack.home, "bench-user")))
        if args.home is None:  # it kills a service: only on a stack of its own
            results["open_breaker"] = asyncio.run(measure_open_breaker(
                stack.url, stack.admin_key, services["mesh"]["pid"], min(args.requests, 1000), args.rounds))
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({"at": datetime.now(UTC).isoformat(), "requests": args.requests,
                                        "rounds": args.rounds, "results": results,
                                        "note": "shared 2-core machine",
                                        "load_average_1_5_15": {"before": load_before,
                                                                "after": os.getloadavg()}}, indent=2))
    say(f"wrote {RESULTS_PATH}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per target per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None,
                        help="measure a stack already running from this home (its run/stack.json) instead of starting "
                             "one; on a busy machine the platform can take longer to start than the benchmark waits")
    return run_benchmark(benchmark, parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
