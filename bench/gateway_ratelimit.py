"""What deciding one rate-limited request costs the gateway process, measured in one run against the real Redis:

- ``one round trip``: ``RedisRateLimiter.hit`` (the gateway's: one Lua call answering the decision and the
  window for the ``RateLimit-*`` headers);
- ``library, two calls``: the ``limits`` library's own way to the same answer, ``hit`` then
  ``get_window_stats`` (two Lua calls), on the same storage;
- ``GET`` baseline: one plain Redis ``GET`` over the same client, the floor of any round trip.

Each variant runs ``--concurrency`` coroutines for ``--requests`` calls in total; the process's own CPU time
(``time.process_time``) per call is the number that matters (the gateway is CPU-bound), wall time per call is
shown too. Redis: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/15``); keys under a prefix of this run,
removed afterwards.

    .venv/bin/python bench/gateway_ratelimit.py [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import uvloop
from limits import parse
from sutazai_gateway.ratelimit import RedisRateLimiter


async def _run(call: Callable[[int], Awaitable[object]], requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU ms per call, wall ms per call)."""
    per_worker = requests // concurrency

    async def worker(index: int) -> None:
        for _ in range(per_worker):
            await call(index)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    done = per_worker * concurrency
    return (time.process_time() - cpu) * 1000 / done, (time.perf_counter() - wall) * 1000 / done


async def main(args: argparse.Namespace) -> None:
    prefix = f"bench:{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"), prefix, 1.0)
    item = parse("1000000000/minute")
    client = limiter.storage.bridge.get_connection()

    async def ours(i: int) -> object:
        return await limiter.hit(item, "default", f"user:{i}")

    async def library(i: int) -> object:
        await limiter.library.hit(item, "default", f"lib:{i}")
        return await limiter.library.get_window_stats(item, "default", f"lib:{i}")

    async def plain_get(i: int) -> object:
        return await client.get(f"{prefix}nothing:{i}")

    variants = {"one round trip": ours, "library, two calls": library, "GET baseline": plain_get}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    try:
        for call in variants.values():  # warm-up: connections, script loading
            await _run(call, args.concurrency * 20, args.concurrency)
        for index in range(args.rounds):
            order = list(variants) if index % 2 == 0 else list(reversed(variants))
            for name in order:
                results[name].append(await _run(variants[name], args.requests, args.concurrency))
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start:start + 500])
        await limiter.aclose()
    print(f"load average {os.getloadavg()}; {args.rounds} rounds x {args.requests} calls, "  # noqa: T201
          f"{args.concurrency} concurrent; medians:")
    base = sorted(r[0] for r in results["GET baseline"])[args.rounds // 2]
    for name, rounds in results.items():
        cpu = sorted(r[0] for r in rounds)[args.rounds // 2]
        wall = sorted(r[1] for r in rounds)[args.rounds // 2]
        print(f"  {name:<20} CPU {cpu:.3f} ms/call ({cpu / base:.2f}x a GET)  wall {wall:.3f} ms/call")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    uvloop.run(main(parser.parse_args()))
