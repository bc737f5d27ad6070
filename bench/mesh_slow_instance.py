"""Benchmark (b): two agents instances, one of them slowed by SIGSTOP/SIGCONT cycles; p50/p99 per strategy.

For each load-balancing strategy, ``GetAgent`` calls at a fixed rate (``--rate`` per second, open loop: each
call is sent at its scheduled time whatever the others do, and its latency counts from that time, so calls held
up by a stall are not hidden by a load generator that waits for them; a closed loop of N in flight sends only
N calls into each stall, well under 1 % of the calls on a quiet machine) go through ``sutazai_runtime``'s
``Upstream`` (the code the gateway and every service run), resolved from the stack's registry, first with both
instances healthy, then while ``agents-2`` is stopped for ``--stop-ms`` out of every ``--period-ms`` (a real
stall: the process does not run, its connections stay open). Same run, same machine; reports each strategy's
p50/p99 and the ratio of its slowed p99 to its all-healthy p99 (goal: the default, p2c_peak_ewma, within 2x;
round robin not).

    .venv/bin/python bench/mesh_slow_instance.py [--seconds 8] [--rate 400] [--stop-ms 150] [--period-ms 500]

Writes ``bench/results/mesh_slow_instance.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
from _platform import existing_or_new, run_benchmark, say, signed_metadata
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai_runtime.balancing import STRATEGIES
from sutazai_runtime.discovery.nats_kv import NatsKvRegistry
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "mesh_slow_instance.json"
RATE_PER_S = 400  # default --rate: calls per second, about a fifth of what the two instances can serve


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def load(upstream: Upstream, seconds: float, metadata: tuple[tuple[str, str], ...],
               rate: float) -> list[float]:
    """Latencies of ``seconds * rate`` calls sent on schedule (open loop), each from its scheduled time."""
    stub = upstream.stub(agents_pb2_grpc.AgentServiceStub)
    request = agents_pb2.GetAgentRequest(id="summarizer")
    latencies: list[float] = []
    start = time.perf_counter()

    async def one(at: float) -> None:
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        await stub.GetAgent(request, metadata=metadata, timeout=10)
        latencies.append(time.perf_counter() - (start + at))

    await asyncio.gather(*(one(i / rate) for i in range(int(seconds * rate))))
    return latencies


async def stall(pid: int, stop_s: float, period_s: float, stop: asyncio.Event) -> None:
    try:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(stop_s)
            os.kill(pid, signal.SIGCONT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period_s - stop_s)
    finally:
        os.kill(pid, signal.SIGCONT)


async def measure(nats_url: str, bucket: str, slow_pid: int, args: argparse.Namespace,
                  sign: Callable[[], tuple[tuple[str, str], ...]]) -> dict[str, object]:
    """``sign``: a fresh identity proof (each lives 60 s; the whole run takes longer)."""
    registry = NatsKvRegistry(await nats.connect(nats_url), bucket=bucket, owns_connection=True)
    await registry.start()
    deadline = time.monotonic() + 30
    while len(registry.instances("agents")) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("two agents instances did not register")
        await asyncio.sleep(0.2)
    results: dict[str, object] = {}
    for strategy in STRATEGIES:
        upstream = Upstream("agents", registry=registry, policy=UpstreamPolicy(strategy=strategy))
        await load(upstream, 1.0, sign(), args.rate)  # warm up
        healthy = await load(upstream, args.seconds, sign(), args.rate)
        stop = asyncio.Event()
        staller = asyncio.create_task(stall(slow_pid, args.stop_ms / 1000, args.period_ms / 1000, stop))
        slowed = await load(upstream, args.seconds, sign(), args.rate)
        stop.set()
        await staller
        await upstream.close()
        row = {"healthy_p50_ms": round(pct(healthy, 0.5), 3), "healthy_p99_ms": round(pct(healthy, 0.99), 3),
               "slowed_p50_ms": round(pct(slowed, 0.5), 3), "slowed_p99_ms": round(pct(slowed, 0.99), 3),
               "slowed_requests": len(slowed)}
        row["p99_ratio"] = round(row["slowed_p99_ms"] / row["healthy_p99_ms"], 2)
        results[strategy] = row
        say(f"{strategy:<18} healthy p50 {row['healthy_p50_ms']:6.2f} p99 {row['healthy_p99_ms']:7.2f} ms | slowed "
            f"p50 {row['slowed_p50_ms']:6.2f} p99 {row['slowed_p99_ms']:7.2f} ms | p99 x{row['p99_ratio']}")
        await asyncio.sleep(1.0)
    await registry.close()
    return results


def benchmark(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    with existing_or_new(args.home, {"SUTAZAI_REPLICAS": "agents=2", "SUTAZAI_DATABASE_NAME": "meshbench"}) as stack:
        state = json.loads((stack.home / "run" / "stack.json").read_text())
        results = asyncio.run(measure(state["infra"]["nats"]["url"], state["registry_bucket"],
                                      state["services"]["agents-2"]["pid"], args,
                                      lambda: signed_metadata(stack.home, "bench-user")))
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({"at": datetime.now(UTC).isoformat(), "rate_per_s": args.rate,
                                        "seconds": args.seconds, "stop_ms": args.stop_ms, "period_ms": args.period_ms,
                                        "results": results, "note": "shared 2-core machine",
                                        "load_average_1_5_15": {"before": load_before,
                                                                "after": os.getloadavg()}}, indent=2))
    say(f"wrote {RESULTS_PATH}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=RATE_PER_S, help="calls per second (open loop)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--stop-ms", type=float, default=150.0)
    parser.add_argument("--period-ms", type=float, default=500.0)
    parser.add_argument("--home", type=Path, default=None,
                        help="measure a stack already running from this home (its run/stack.json) instead of starting "
                             "one; on a busy machine the platform can take longer to start than the benchmark waits")
    return run_benchmark(benchmark, parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
