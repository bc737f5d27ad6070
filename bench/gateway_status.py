"""Benchmark ``GET /api/v1/status`` through the gateway beside a bare FastAPI hello-world.

Both targets are measured on this machine in the same run, in alternating rounds, with the same load
(32 keep-alive connections for a fixed duration, after a short warm-up that is not counted). The result is the
median of the rounds for each target and the ratio gateway/bare, which is far more stable on a shared, noisy
machine than any absolute number.

The load comes from ``wrk`` when it is on PATH, else from ``bench/_loadgen.py`` (aiohttp on uvloop) in a process
of its own. The platform is started with ``python -m sutazai_stack run --free-ports`` in a temporary home and
stopped at the end; ``--url`` benchmarks a gateway that is already running instead.

    .venv/bin/python bench/gateway_status.py [--duration 10] [--rounds 3] [--url http://127.0.0.1:10010]

Traffic goes only to 127.0.0.1. The numbers are also written to ``bench/results/gateway_status.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from _platform import (
    BenchError,
    check_loopback_url,
    free_port,
    http_load,
    machine,
    platform_stack,
    ratio,
    run_benchmark,
    say,
    stop_process,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "results" / "gateway_status.json"
STATUS_PATH = "/api/v1/status"
BARE_START_TIMEOUT_S = 30.0
TARGETS = {"bare": "bare FastAPI", "gateway": "gateway /status"}


@dataclass
class Measurement:
    """One target's numbers: one round, or the median over the rounds."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_percent: float | None = None


# --- servers -----------------------------------------------------------------------------------------------


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def bare_server(pids: list[int] | None = None) -> Iterator[str]:
    """The hello-world baseline in its own process; yields its URL (and appends its pid to ``pids``)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "_bare_app.py"), str(port)],
        stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches only us; we stop it in order
    )
    if pids is not None:
        pids.append(process.pid)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + BARE_START_TIMEOUT_S
        while not answers_200(url):
            if process.poll() is not None:
                raise BenchError(f"the bare FastAPI app exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise BenchError(f"the bare FastAPI app did not answer on {url} within {BARE_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process, timeout_s=10)


# --- load ----------------------------------------------------------------------------------------------------

_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _wrk_time_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(value) * _WRK_UNITS_MS[unit]


def parse_wrk(output: str) -> Measurement:
    """Read ``wrk --latency`` output: successful responses per second, p50/p99 and the errors."""
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    done = re.search(r"^\s+(\d+) requests in ([\d.]+[a-z]+),", output, re.MULTILINE)
    if done is None or set(latency) != {"50", "99"}:
        raise BenchError(f"could not read the wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    bad = int(non_2xx.group(1)) if non_2xx else 0
    failed = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    elapsed_s = _wrk_time_ms(done.group(2)) / 1000.0
    return Measurement(
        requests_per_s=(int(done.group(1)) - bad) / elapsed_s,
        p50_ms=_wrk_time_ms(latency["50"]),
        p99_ms=_wrk_time_ms(latency["99"]),
        errors=bad + failed,
    )


def measure_wrk(wrk: str, url: str, args: argparse.Namespace) -> Measurement:
    base = [wrk, "-t1", f"-c{args.connections}"]
    warmup = [*base, f"-d{max(1, round(args.warmup))}s", url]
    subprocess.run(warmup, check=True, capture_output=True, timeout=args.warmup + 30)
    run = [*base, f"-d{max(1, round(args.duration))}s", "--latency", url]
    done = subprocess.run(run, check=True, capture_output=True, text=True, timeout=args.duration + 30)
    return parse_wrk(done.stdout)


def measure_aiohttp(url: str, args: argparse.Namespace) -> Measurement:
    command = [
        sys.executable, str(BENCH_DIR / "_loadgen.py"), url, f"--duration={args.duration}",
        f"--warmup={args.warmup}", f"--connections={args.connections}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.warmup + args.duration + 60)
    if done.returncode != 0:
        raise BenchError(f"the load generator failed (exit {done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout)
    return Measurement(
        requests_per_s=result["requests_per_s"], p50_ms=result["p50_ms"], p99_ms=result["p99_ms"],
        errors=result["errors"], client_cpu_percent=result["client_cpu_percent"],
    )


def measure(url: str, args: argparse.Namespace) -> Measurement:
    wrk = shutil.which("wrk")
    return measure_wrk(wrk, url, args) if wrk else measure_aiohttp(url, args)


def run_rounds(urls: dict[str, str], args: argparse.Namespace) -> dict[str, list[Measurement]]:
    """Measure every target once per round, reversing the order each round so drift hits both alike."""
    rounds: dict[str, list[Measurement]] = {name: [] for name in urls}
    for index in range(args.rounds):
        order = list(urls) if index % 2 == 0 else list(reversed(urls))
        for name in order:
            result = measure(urls[name], args)
            rounds[name].append(result)
            say(f"round {index + 1}/{args.rounds} {TARGETS[name]:<16} {result.requests_per_s:9.0f} req/s  "
                f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}")
    return rounds


# --- report --------------------------------------------------------------------------------------------------


def median_of(rounds: list[Measurement]) -> Measurement:
    """Median of each number over the rounds (taken separately); errors are summed."""
    cpu = [r.client_cpu_percent for r in rounds if r.client_cpu_percent is not None]
    return Measurement(
        requests_per_s=statistics.median(r.requests_per_s for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        client_cpu_percent=statistics.median(cpu) if cpu else None,
    )


def ratios(gateway: Measurement, bare: Measurement) -> dict[str, float]:
    return {
        "throughput": ratio(gateway.requests_per_s, bare.requests_per_s),
        "p50": ratio(gateway.p50_ms, bare.p50_ms),
        "p99": ratio(gateway.p99_ms, bare.p99_ms),
    }


def format_table(medians: dict[str, Measurement], ratio_of: dict[str, float]) -> str:
    lines = [f"{'target':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"]
    for name, m in medians.items():
        lines.append(f"{TARGETS[name]:<16} {m.requests_per_s:>9.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {m.errors:>7}")
    lines.append(f"ratio gateway/bare: throughput {ratio_of['throughput']:.2f}, "
                 f"p50 {ratio_of['p50']:.2f}, p99 {ratio_of['p99']:.2f}")
    return "\n".join(lines)


def write_json(path: Path, urls: dict[str, str], rounds: dict[str, list[Measurement]],
               medians: dict[str, Measurement], ratio_of: dict[str, float], args: argparse.Namespace) -> None:
    report = {
        "benchmark": "gateway_status",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load": http_load(args),
        "targets": {
            name: {"label": TARGETS[name], "url": urls[name], "median": asdict(medians[name]),
                   "rounds": [asdict(r) for r in rounds[name]]}
            for name in urls
        },
        "ratio_gateway_over_bare": ratio_of,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# --- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark this running gateway (e.g. http://127.0.0.1:10010) instead of "
                                      "starting the platform")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per round (default 10)")
    parser.add_argument("--warmup", type=float, default=1.5, help="uncounted seconds before each round (default 1.5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON result")
    args = parser.parse_args(argv)
    check_loopback_url(parser, args.url)
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration and --rounds and --connections must be positive, --warmup not negative")
    return args


@contextmanager
def gateway_base_url(url: str | None) -> Iterator[str]:
    """The given gateway, or a platform started for this run."""
    if url:
        yield url.rstrip("/")
        return
    with platform_stack() as stack:
        yield stack.url


def benchmark(args: argparse.Namespace) -> None:
    with bare_server() as bare_url, gateway_base_url(args.url) as gateway_url:
        urls = {"bare": bare_url, "gateway": gateway_url + STATUS_PATH}
        if not answers_200(urls["gateway"]):
            raise BenchError(f"GET {urls['gateway']} does not answer 200")
        say(f"load: {'wrk' if shutil.which('wrk') else 'aiohttp (bench/_loadgen.py)'}, {args.connections} "
            f"connections, {args.rounds} rounds x {args.duration:g} s (+{args.warmup:g} s warm-up) per target")
        rounds = run_rounds(urls, args)
    medians = {name: median_of(results) for name, results in rounds.items()}
    ratio_of = ratios(medians["gateway"], medians["bare"])
    print(format_table(medians, ratio_of))  # noqa: T201
    write_json(args.output, urls, rounds, medians, ratio_of, args)
    say(f"medians of {args.rounds} rounds; written to {args.output}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
