"""Benchmark a read that crosses one gRPC hop, ``GET /api/v1/agents/{id}`` with an API key, beside a bare FastAPI
hello-world and the gateway's ``GET /api/v1/status`` (no hop), with the CPU each server process spends per request.

All three targets are measured on this machine in the same run, in alternating rounds, under the same load (32
keep-alive connections by default, ``wrk`` when it is on PATH, else ``bench/_loadgen.py``). Besides req/s and
latency, each round reads the CPU time of the processes involved from ``/proc/<pid>/stat`` (utime + stime of the
process and its descendants) before and after the measured run and divides it by the requests answered: the bare
app's, the gateway's (every gateway worker process) and the agents service's. CPU per request moves much less
than req/s when other work competes for the cores.

    .venv/bin/python bench/gateway_agents.py [--duration 10] [--rounds 3] [--connections 32] [--with-limits]

``--with-limits`` adds a fourth target, the same read with a plain user's API key: the admin's key is exempt
from rate limits (no Redis call), the user's is counted (one Redis round trip, under a limit high enough never
to refuse), so the two ``agents`` targets measure what the rate limit costs, in the same run. The API cache is
off here (``SUTAZAI_GATEWAY_API_CACHE_TTL_S=0``): the read must cross its hop.

The platform is started with ``python -m sutazai_stack run --free-ports`` in a temporary home and stopped at the
end. Traffic goes only to 127.0.0.1. The numbers are also written to ``bench/results/gateway_agents.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _platform import BenchError, http_load, machine, platform_stack, ratio, run_benchmark, say
from gateway_status import answers_200, bare_server, parse_wrk

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "results" / "gateway_agents.json"
TARGETS = {"bare": "bare FastAPI", "status": "gateway /status", "agents": "gateway agents/{id}",
           "agents_limited": "agents/{id} limited"}
GOAL_RATIO = 0.33
GOAL_GATEWAY_CPU_MS = 0.6
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)  # process group -> CPU ms per request
    client_cpu_percent: float | None = None


# --- CPU time of a process tree (Linux /proc) ----------------------------------------------------------------


def _stat_all() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds used so far)} for every process we can read."""
    found: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return found


def tree_cpu_s(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and all its descendants (e.g. every gateway worker)."""
    stats = _stat_all()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    used = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            if pid in stats:
                total += stats[pid][1]
            todo.extend(children.get(pid, ()))
        used[name] = total
    return used


# --- load ----------------------------------------------------------------------------------------------------


def _wrk_requests(output: str) -> int:
    done = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if done is None:
        raise BenchError(f"could not read the wrk output:\n{output}")
    return int(done.group(1))


def _load(url: str, headers: dict[str, str], args: argparse.Namespace, warmup: bool) -> tuple[Round, float]:
    """One load run (the warm-up, or the measured one); returns its numbers and the load generator's CPU seconds."""
    duration = args.warmup if warmup else args.duration
    before = os.times()
    wrk = shutil.which("wrk")
    if wrk:
        header_args = [a for name, value in headers.items() for a in ("-H", f"{name}: {value}")]
        command = [wrk, "-t1", f"-c{args.connections}", f"-d{max(1, round(duration))}s", "--latency",
                   *header_args, url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
        if done.returncode != 0:
            raise BenchError(f"wrk failed (exit {done.returncode}) on {url}:\n{done.stdout}{done.stderr}")
        m = parse_wrk(done.stdout)
        result = Round(m.requests_per_s, m.p50_ms, m.p99_ms, m.errors, _wrk_requests(done.stdout))
    else:
        command = [sys.executable, str(BENCH_DIR / "_loadgen.py"), url, f"--duration={duration}", "--warmup=0",
                   f"--connections={args.connections}", *(f"--header={k}: {v}" for k, v in headers.items())]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        if done.returncode != 0:
            raise BenchError(f"the load generator failed (exit {done.returncode}):\n{done.stderr}")
        r = json.loads(done.stdout)
        result = Round(r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["errors"], int(r["responses"]),
                       client_cpu_percent=r["client_cpu_percent"])
    after = os.times()
    client_s = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return result, client_s


def measure(url: str, headers: dict[str, str], pids: dict[str, int], args: argparse.Namespace) -> Round:
    _load(url, headers, args, warmup=True)
    cpu_before = tree_cpu_s(pids)
    started = time.perf_counter()
    result, client_s = _load(url, headers, args, warmup=False)
    wall = time.perf_counter() - started
    cpu_after = tree_cpu_s(pids)
    if result.requests:
        result.cpu_ms_per_request = {name: round(1000.0 * (cpu_after[name] - cpu_before[name]) / result.requests, 3)
                                     for name in pids}
        result.cpu_ms_per_request["load generator"] = round(1000.0 * client_s / result.requests, 3)
    if result.client_cpu_percent is None:
        result.client_cpu_percent = round(100.0 * client_s / wall, 1)
    return result


# --- report --------------------------------------------------------------------------------------------------


def say_round(label: str, result: Round) -> None:
    """One measured round on the progress output."""
    cpu = ", ".join(f"{g} {v:.3f}" for g, v in result.cpu_ms_per_request.items())
    say(f"{label} {result.requests_per_s:7.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  "
        f"errors {result.errors}  CPU ms/request: {cpu}")


def median_round(rounds: list[Round]) -> Round:
    groups = sorted({g for r in rounds for g in r.cpu_ms_per_request})
    return Round(
        requests_per_s=statistics.median(r.requests_per_s for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        requests=sum(r.requests for r in rounds),
        cpu_ms_per_request={g: statistics.median(r.cpu_ms_per_request.get(g, 0.0) for r in rounds) for g in groups},
        client_cpu_percent=statistics.median(r.client_cpu_percent or 0.0 for r in rounds),
    )


def format_table(medians: dict[str, Round]) -> str:
    lines = [f"{'target':<20} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  CPU ms per request"]
    for name, m in medians.items():
        cpu = ", ".join(f"{g} {v:.3f}" for g, v in m.cpu_ms_per_request.items())
        lines.append(f"{TARGETS[name]:<20} {m.requests_per_s:>7.0f} {m.p50_ms:>7.2f} {m.p99_ms:>7.2f} "
                     f"{m.errors:>6}  {cpu}")
    bare, agents = medians["bare"], medians["agents"]
    read_ratio = ratio(agents.requests_per_s, bare.requests_per_s)
    gateway_cpu = agents.cpu_ms_per_request.get("gateway", float("nan"))
    lines.append(f"ratio /status/bare: {ratio(medians['status'].requests_per_s, bare.requests_per_s):.2f}; "
                 f"ratio agents read/bare: {read_ratio:.2f} (goal >= {GOAL_RATIO}: "
                 f"{'yes' if read_ratio >= GOAL_RATIO else 'NO'})")
    lines.append(f"gateway CPU per agents read: {gateway_cpu:.3f} ms (goal <= {GOAL_GATEWAY_CPU_MS}: "
                 f"{'yes' if gateway_cpu <= GOAL_GATEWAY_CPU_MS else 'NO'}); agents service CPU per read: "
                 f"{agents.cpu_ms_per_request.get('agents service', float('nan')):.3f} ms")
    if (limited := medians.get("agents_limited")) is not None:
        extra_cpu = limited.cpu_ms_per_request.get("gateway", float("nan")) - gateway_cpu
        lines.append(f"rate-limited read / exempt read: {ratio(limited.requests_per_s, agents.requests_per_s):.2f} "
                     f"of the throughput, {extra_cpu:+.3f} ms gateway CPU per request")
    return "\n".join(lines)


def _first_agent_id(base_url: str, api_key: str) -> str:
    request = urllib.request.Request(f"{base_url}/api/v1/agents?limit=1", headers={"X-API-Key": api_key})
    with urllib.request.urlopen(request, timeout=10) as response:
        agents = json.load(response)
    if not agents:
        raise BenchError("the platform lists no agents to read")
    return str(agents[0]["id"])


def _post(url: str, body: object, headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def _plain_user_key(base_url: str, admin_key: str) -> str:
    """A new user without the admin role, and an API key of theirs (rate-limited, unlike the admin)."""
    name, password = f"bench_{os.getpid()}_{int(time.time())}", os.urandom(16).hex()
    _post(f"{base_url}/api/v1/auth/users", {"username": name, "password": password}, {"X-API-Key": admin_key})
    token = _post(f"{base_url}/api/v1/auth/login", {"username": name, "password": password}, {})["access_token"]
    created = _post(f"{base_url}/api/v1/auth/api-keys", {"name": "bench"}, {"Authorization": f"Bearer {token}"})
    return str(created["key"])


def benchmark(args: argparse.Namespace) -> None:
    bare_pids: list[int] = []
    # A database (and so a task namespace on the shared NATS) of its own: benchmarks of other branches may have
    # left streams of another shape under "sutazai_bench".
    extra_env = {"SUTAZAI_DATABASE_NAME": "sutazai_bench_agents", "SUTAZAI_GATEWAY_API_CACHE_TTL_S": "0"}
    if args.gateway_workers is not None:
        extra_env["SUTAZAI_GATEWAY_WORKERS"] = str(args.gateway_workers)
    with bare_server(bare_pids) as bare_url, platform_stack(extra_env) as stack:
        services = json.loads((stack.home / "run" / "stack.json").read_text())["services"]
        agent_id = _first_agent_id(stack.url, stack.admin_key)
        key = {"X-API-Key": stack.admin_key}
        gateway_pids = {"gateway": services["gateway"]["pid"], "agents service": services["agents"]["pid"]}
        targets = {
            "bare": (bare_url, {}, {"bare app": bare_pids[0]}),
            "status": (stack.url + "/api/v1/status", {}, {"gateway": services["gateway"]["pid"]}),
            "agents": (f"{stack.url}/api/v1/agents/{agent_id}", key, gateway_pids),
        }
        if args.with_limits:
            user_key = {"X-API-Key": _plain_user_key(stack.url, stack.admin_key)}
            targets["agents_limited"] = (f"{stack.url}/api/v1/agents/{agent_id}", user_key, gateway_pids)
        for url, headers, _ in targets.values():
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 200:
                    raise BenchError(f"GET {url} answers {response.status}")
        if not answers_200(bare_url):
            raise BenchError("the bare app does not answer")
        say(f"load: {'wrk' if shutil.which('wrk') else 'aiohttp (bench/_loadgen.py)'}, {args.connections} "
            f"connections, {args.rounds} rounds x {args.duration:g} s (+{args.warmup:g} s warm-up) per target; "
            f"agent {agent_id!r}")
        rounds: dict[str, list[Round]] = {name: [] for name in targets}
        for index in range(args.rounds):
            order = list(targets) if index % 2 == 0 else list(reversed(targets))
            for name in order:
                url, headers, pids = targets[name]
                result = measure(url, headers, pids, args)
                rounds[name].append(result)
                say_round(f"round {index + 1}/{args.rounds} {TARGETS[name]:<20}", result)
    medians = {name: median_round(results) for name, results in rounds.items()}
    print(format_table(medians))  # noqa: T201
    report = {
        "benchmark": "gateway_agents",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load": http_load(args, gateway_workers=args.gateway_workers),
        "targets": {name: {"label": TARGETS[name], "median": asdict(medians[name]),
                           "rounds": [asdict(r) for r in rounds[name]]} for name in rounds},
        "ratio_agents_read_over_bare": ratio(medians["agents"].requests_per_s, medians["bare"].requests_per_s),
        "ratio_status_over_bare": ratio(medians["status"].requests_per_s, medians["bare"].requests_per_s),
    }
    if "agents_limited" in medians:
        report["ratio_limited_read_over_exempt_read"] = ratio(medians["agents_limited"].requests_per_s,
                                                              medians["agents"].requests_per_s)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    say(f"medians of {args.rounds} rounds; written to {args.output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per round (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each round (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON result")
    parser.add_argument("--gateway-workers", type=int, help="SUTAZAI_GATEWAY_WORKERS for the platform (default: "
                                                            "the gateway's own default, 1)")
    parser.add_argument("--with-limits", action="store_true",
                        help="also the read with a rate-limited (plain user's) key: what the limit costs")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup <= 0 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration, --warmup, --rounds and --connections must be positive")
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads process CPU time from /proc (Linux only)")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
