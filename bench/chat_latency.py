"""Benchmark chat through the platform beside the llama.cpp server it fronts, in the same run.

1. **Added time to first token** (goal ≤ 15 ms at p50): the same streamed chat request, alternately sent
   straight to the llama.cpp server (``POST /v1/chat/completions``, ``stream: true``) and through the gateway
   (``POST /api/v1/chat/stream`` → chat service over gRPC → the same llama.cpp server). Both sides time the
   first token the client receives; the result is p50(gateway) - p50(direct).
2. **Streamed tokens/s through the stack as a fraction of direct** (goal ≥ 0.95): from the same streams,
   (tokens - 1) / (time of the last token - time of the first), median per side, then the ratio.
3. **A cache hit's latency at the gateway** (goal ≤ 3 ms at p50): ``POST /api/v1/chat`` with a deterministic
   request (temperature 0) answered from the Redis cache, sequentially, after one warming call.

The platform is started with ``python -m sutazai_stack run --free-ports`` in a temporary home (the PostgreSQL,
Redis and NATS already running are used; the model server is started for the run), or ``--url`` names a
running gateway (its ``--home`` gives the API key and the model server's address).

    .venv/bin/python bench/chat_latency.py [--rounds 15] [--max-tokens 64] [--hits 300]

The numbers also go to ``bench/results/chat_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "results" / "chat_latency.json"
PROMPT = "Write a short story about a lighthouse keeper and a storm."
TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=5)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


@dataclass
class Stream:
    ttft_ms: float
    tokens: int
    tokens_per_s: float


@contextlib.contextmanager
def platform(home: Path) -> Iterator[dict]:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NATS_URL",
                                                           "SUTAZAI_MODEL_URL", "SUTAZAI_EMBEDDED")}
    env.update(SUTAZAI_HOME=str(home), SUTAZAI_FREE_PORTS="1")
    env.setdefault("SUTAZAI_DATABASE_NAME", "sutazai_bench")  # a set name wins (own task namespace)
    with open(home / "stack.log", "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "sutazai_stack", "run"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        state_file = home / "run" / "stack.json"
        deadline = time.monotonic() + 240
        while not state_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stack did not start; see {home / 'stack.log'}")
            time.sleep(0.2)
        yield json.loads(state_file.read_text())
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()


async def _sse_stream(session: aiohttp.ClientSession, url: str, body: dict, headers: dict,  # type: ignore[type-arg]
                      token_of) -> Stream:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    async with session.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {(await response.text())[:300]}")
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if token_of(json.loads(line[6:])):
                last = time.perf_counter()
                first = first or last
                tokens += 1
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return Stream((first - started) * 1000, tokens, rate)


def _direct_token(event: dict) -> str:  # type: ignore[type-arg]
    choices = event.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


def _gateway_token(event: dict) -> str:  # type: ignore[type-arg]
    return str(event.get("token") or "")


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) each process has used so far, from /proc (Linux); 0 where unreadable."""
    used = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            used[name] = 0.0
    return used


async def measure(gateway: str, model_server: str, key: str, rounds: int, max_tokens: int, hits: int,  # type: ignore[type-arg]
                  pids: dict[str, int] | None = None) -> dict:
    auth = {"X-API-Key": key}
    direct_body = {"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": PROMPT}],
                   "stream": True, "temperature": 0, "max_tokens": max_tokens}
    gateway_body = {"message": PROMPT, "model": "tinyllama", "temperature": 0, "max_tokens": max_tokens,
                    "use_cache": False}
    direct: list[Stream] = []
    through: list[Stream] = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        say("warming up ...")
        await _sse_stream(session, model_server + "/v1/chat/completions", direct_body, {}, _direct_token)
        for attempt in range(30):  # chat reports a backend only after its first health round: wait for it
            try:
                await _sse_stream(session, gateway + "/api/v1/chat/stream", gateway_body, auth, _gateway_token)
                break
            except RuntimeError as exc:
                if attempt == 29 or " 503: " not in str(exc):
                    raise
                say(f"gateway not ready for chat yet ({exc}); retrying")
                await asyncio.sleep(2)
        for i in range(rounds):
            order = ["direct", "gateway"] if i % 2 == 0 else ["gateway", "direct"]
            for side in order:
                if side == "direct":
                    direct.append(await _sse_stream(session, model_server + "/v1/chat/completions",
                                                    direct_body, {}, _direct_token))
                else:
                    through.append(await _sse_stream(session, gateway + "/api/v1/chat/stream",
                                                     gateway_body, auth, _gateway_token))
            say(f"round {i + 1}/{rounds}: ttft direct {direct[-1].ttft_ms:.1f} ms, "
                f"gateway {through[-1].ttft_ms:.1f} ms")

        hit_body = {"message": PROMPT + " (cache benchmark)", "temperature": 0, "max_tokens": 16}
        async with session.post(gateway + "/api/v1/chat", json=hit_body, headers=auth) as warm:
            warm.raise_for_status()
        hit_ms: list[float] = []
        cpu_before = _cpu_s(pids or {})
        for _ in range(hits):
            started = time.perf_counter()
            async with session.post(gateway + "/api/v1/chat", json=hit_body, headers=auth) as response:
                reply = await response.json()
            hit_ms.append((time.perf_counter() - started) * 1000)
            assert reply["cached"], reply
        cpu_after = _cpu_s(pids or {})
    # CPU per cache hit per process moves far less than latency when other work competes for the cores.
    hit_cpu_ms = {name: round((cpu_after[name] - cpu_before[name]) * 1000 / hits, 3) for name in cpu_before}
    ttft_direct, ttft_gateway = _p50([s.ttft_ms for s in direct]), _p50([s.ttft_ms for s in through])
    rate_direct, rate_gateway = _p50([s.tokens_per_s for s in direct]), _p50([s.tokens_per_s for s in through])
    return {
        "ttft_p50_ms": {"direct": ttft_direct, "gateway": ttft_gateway,
                        "added": round(ttft_gateway - ttft_direct, 3), "goal_added_max": 15},
        "tokens_per_s_p50": {"direct": rate_direct, "gateway": rate_gateway,
                             "ratio": round(rate_gateway / rate_direct, 3) if rate_direct else None,
                             "goal_ratio_min": 0.95},
        "tokens_per_stream_p50": {"direct": _p50([s.tokens for s in direct]),
                                  "gateway": _p50([s.tokens for s in through])},
        "cache_hit_ms": {"p50": _p50(hit_ms), "p99": round(sorted(hit_ms)[int(len(hit_ms) * 0.99) - 1], 3),
                         "goal_p50_max": 3, "cpu_ms_per_hit": hit_cpu_ms},
        "rounds": rounds, "max_tokens": max_tokens, "hits": hits,
        "raw": {"direct": [asdict(s) for s in direct], "gateway": [asdict(s) for s in through]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--url", help="a running gateway; needs --home for its API key and model server")
    parser.add_argument("--home", type=Path, help="the running stack's home (secrets.json, run/stack.json)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.url:
            home = args.home or Path(".sutazai")
            state = json.loads((home / "run" / "stack.json").read_text())
            gateway = args.url.rstrip("/")
        else:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sutazai-bench-")))
            say("starting the platform ...")
            state = stack.enter_context(platform(home))
            gateway = state["gateway_url"]
        key = json.loads((home / "secrets.json").read_text())["admin_api_key"]
        model_server = state["infra"]["model_server"]["url"]
        pids = {name: int(state["services"][name]["pid"]) for name in ("gateway", "chat")
                if name in state.get("services", {})}
        result = asyncio.run(measure(gateway, model_server, key, args.rounds, args.max_tokens, args.hits, pids))

    result["when"] = datetime.now(UTC).isoformat()
    RESULTS_PATH.parent.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(result, indent=2))
    t, r, c = result["ttft_p50_ms"], result["tokens_per_s_p50"], result["cache_hit_ms"]
    print(f"time to first token p50: direct {t['direct']:.1f} ms, gateway {t['gateway']:.1f} ms, "  # noqa: T201
          f"added {t['added']:.1f} ms (goal <= 15)")
    print(f"streamed tokens/s p50: direct {r['direct']:.1f}, gateway {r['gateway']:.1f}, "  # noqa: T201
          f"ratio {r['ratio']} (goal >= 0.95)")
    print(f"cache hit at the gateway: p50 {c['p50']:.2f} ms, p99 {c['p99']:.2f} ms (goal p50 <= 3); "  # noqa: T201
          f"CPU ms per hit: {c['cpu_ms_per_hit']}")


if __name__ == "__main__":
    main()
