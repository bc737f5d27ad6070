"""What the edge costs the one-hop read: ``GET /api/v1/agents/{id}`` on a stack with rate limits and tracing on,
beside the same read on a stack with both off, in the same run (issue #10: goal ≤ 10 % of throughput).

    .venv/bin/python bench/edge_overhead.py [--duration 10] [--rounds 3] [--connections 32] [--sampler-arg 0.01]

Five platforms run side by side on free ports (``--stacks``, default 2, of each configuration below, pooled per
configuration, and one for the all-traced load; ``_platform.platform_stack``, API cache off so every read
crosses its hop), and an OTLP/gRPC receiver (``bench/_otlp_sink.py``) that counts the spans it is sent:

- ``edge off``: ``SUTAZAI_GATEWAY_RATE_LIMIT_ENABLED=false``, no ``OTEL_EXPORTER_OTLP_ENDPOINT`` (no span code
  runs);
- ``edge on``: rate limits on (a plain user's key: every read is counted, under a limit high enough never to
  refuse: far from it, so counted in process and added in Redis every 50 ms), tracing on, exported to the
  receiver, with the sampler as shipped (parent-based, 1 % of new traces; ``--sampler-arg`` sets another
  ratio);
- ``edge on, all traced``: one more stack configured as ``edge on``, each request carrying a sampled W3C
  ``traceparent``, which the parent-based sampler follows: every read makes and exports its gateway, gRPC
  client and agents server spans (a stack of its own: the export backlog of a round would otherwise spill into
  the next round of ``edge on``).

The signed identity proof is on in both stacks (services refuse calls without one, so there is no stack without
it); its cost is measured apart, in the same process with and without it, by ``bench/observability_overhead.py``
(variant ``no_identity``). Each round loads each target in turn (order reversed every round) and reads the CPU
time of the gateway's and the agents service's processes and of the receiver. Traffic goes only to 127.0.0.1.
Writes ``bench/results/edge_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _platform import BenchError, http_load, machine, platform_stack, ratio, run_benchmark, say, stop_process
from gateway_agents import Round, _first_agent_id, _plain_user_key, measure, median_round, say_round

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "results" / "edge_overhead.json"
GOAL_SHARE = 0.10
TARGETS = {"off": "edge off", "on": "edge on", "traced": "edge on, all traced"}
# A sampled W3C trace context: the parent-based sampler records every request that carries it.
DRAIN_S = 6.0  # the SDK's batch delay is 5 s: what an all-traced round leaves queued is exported by then
SAMPLED_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@contextmanager
def otlp_sink() -> Iterator[tuple[str, subprocess.Popen[bytes], dict[str, int]]]:
    """The receiver's endpoint, its process, and (filled when it stops) what it received."""
    folder = Path(tempfile.mkdtemp(prefix="sutazai-otlp-sink-"))
    port_file = folder / "port"
    process = subprocess.Popen([sys.executable, str(BENCH_DIR / "_otlp_sink.py"), str(port_file)],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    received: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the OTLP receiver did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().strip()}", process, received
    finally:
        process.terminate()
        try:
            out, _ = process.communicate(timeout=10)
            received.update(json.loads(out.decode().strip().splitlines()[-1]))
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            stop_process(process, timeout_s=2)
        shutil.rmtree(folder, ignore_errors=True)


def _pids(stack_home: Path) -> dict[str, int]:
    services = json.loads((stack_home / "run" / "stack.json").read_text())["services"]
    return {"gateway": services["gateway"]["pid"], "agents service": services["agents"]["pid"]}


def benchmark(args: argparse.Namespace) -> None:
    with ExitStack() as started:
        endpoint, sink, received = started.enter_context(otlp_sink())
        common = {"SUTAZAI_GATEWAY_API_CACHE_TTL_S": "0"}
        sampler = {} if args.sampler_arg is None else {
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(args.sampler_arg)}
        configs = {
            "off": {"SUTAZAI_GATEWAY_RATE_LIMIT_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
            "on": {"SUTAZAI_GATEWAY_RATE_LIMIT_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **sampler},
        }
        # Stacks of one configuration differ between themselves by a few percent (where their processes land,
        # what their memory looks like): ``--stacks`` of each, started alternately, pooled per configuration.
        stacks: dict[str, Any] = {}
        for copy in range(1, args.stacks + 1):
            for config, env in configs.items():
                stacks[f"{config}-{copy}"] = started.enter_context(platform_stack({
                    **common, "SUTAZAI_DATABASE_NAME": f"sutazai_bench_edge_{config}_{copy}", **env}))
        # 'edge on' again for the all-traced load: its export backlog (the SDK drains it in a thread for seconds
        # after a round) must not land in the measured rounds of an 'edge on' stack.
        stacks["traced"] = started.enter_context(platform_stack({
            **common, "SUTAZAI_DATABASE_NAME": "sutazai_bench_edge_traced", **configs["on"]}))
        targets: dict[str, tuple[str, dict[str, str], dict[str, int]]] = {}
        for name, stack in stacks.items():
            agent_id = _first_agent_id(stack.url, stack.admin_key)
            key = {"X-API-Key": _plain_user_key(stack.url, stack.admin_key)}
            if name == "traced":
                key["traceparent"] = SAMPLED_PARENT
            pids = _pids(stack.home)
            if not name.startswith("off"):
                pids["OTLP receiver"] = sink.pid
            targets[name] = (f"{stack.url}/api/v1/agents/{agent_id}", key, pids)
        for url, headers, _ in targets.values():
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 200:
                    raise BenchError(f"GET {url} answers {response.status}")
        _check_limits(targets)
        say(f"{args.connections} connections, {args.rounds} rounds x {args.duration:g} s (+{args.warmup:g} s "
            f"warm-up) per target, {args.stacks} stack(s) per configuration; sampler {_sampler_label(args)}")
        rounds: dict[str, list[Round]] = {name: [] for name in targets}
        plain = [name for name in targets if name != "traced"]
        for index in range(args.rounds):
            # off and on alternate; the all-traced load comes last, then a pause while its export drains
            order = [*(plain if index % 2 == 0 else reversed(plain)), "traced"]
            for name in order:
                url, headers, pids = targets[name]
                result = measure(url, headers, pids, args)
                rounds[name].append(result)
                say_round(f"round {index + 1}/{args.rounds} {_label(name):<22}", result)
                if name == "traced":
                    time.sleep(DRAIN_S)
    per_stack = {name: median_round(results) for name, results in rounds.items()}
    pooled = {config: [r for name, results in rounds.items() if name.split("-")[0] == config for r in results]
              for config in ("off", "on", "traced")}
    medians = {config: median_round(results) for config, results in pooled.items()}
    print(format_table(per_stack, medians, received))  # noqa: T201
    report = {
        "benchmark": "edge_overhead",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load": http_load(args, sampler=_sampler_label(args)),
        "stacks_per_configuration": args.stacks,
        "configurations": {name: {"label": TARGETS[name], "median": asdict(m)} for name, m in medians.items()},
        "stacks": {name: {"median": asdict(per_stack[name]), "rounds": [asdict(r) for r in rounds[name]]}
                   for name in rounds},
        "throughput_on_over_off": ratio(medians["on"].requests_per_s, medians["off"].requests_per_s),
        "throughput_traced_over_off": ratio(medians["traced"].requests_per_s, medians["off"].requests_per_s),
        "spans_received": received,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    say(f"medians of {args.rounds} rounds; written to {args.output}")


def _sampler_label(args: argparse.Namespace) -> str:
    if args.sampler_arg is None:
        return "as shipped (parentbased_traceidratio, 1 % of new traces)"
    return f"parentbased_traceidratio {args.sampler_arg:g}"


def _check_limits(targets: dict[str, tuple[str, dict[str, str], dict[str, int]]]) -> None:
    """The 'on' stacks count the plain user's reads (RateLimit-* headers); the 'off' stacks do not."""
    for name, (url, headers, _) in targets.items():
        expected = not name.startswith("off")
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            limited = response.headers.get("RateLimit-Limit") is not None
        if limited != expected:
            raise BenchError(f"the '{name}' stack {'does not count' if expected else 'counts'} reads in its limits")


def _label(name: str) -> str:
    config, _, copy = name.partition("-")
    return TARGETS[config] + (f" #{copy}" if copy else "")


def format_table(per_stack: dict[str, Round], medians: dict[str, Round], received: dict[str, int]) -> str:
    lines = [f"{'stack':<22} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  CPU ms per request"]
    for group in (per_stack, medians):
        for name, m in group.items():
            cpu = ", ".join(f"{g} {v:.3f}" for g, v in m.cpu_ms_per_request.items())
            label = _label(name) if group is per_stack else f"{TARGETS[name]} (pooled)"
            lines.append(f"{label:<22} {m.requests_per_s:>7.0f} {m.p50_ms:>7.2f} {m.p99_ms:>7.2f} "
                         f"{m.errors:>6}  {cpu}")
    off_rps = medians["off"].requests_per_s
    for name in ("on", "traced"):
        share = 1.0 - ratio(medians[name].requests_per_s, off_rps)
        extra = {g: medians[name].cpu_ms_per_request.get(g, 0.0) - medians["off"].cpu_ms_per_request.get(g, 0.0)
                 for g in ("gateway", "agents service")}
        verdict = f" (goal <= {GOAL_SHARE:.0%}: {'yes' if share <= GOAL_SHARE else 'NO'})" if name == "on" else ""
        lines.append(f"{TARGETS[name]}: {share:+.1%} of the throughput lost{verdict}; CPU per read "
                     f"gateway {extra['gateway']:+.3f} ms, agents service {extra['agents service']:+.3f} ms")
    lines.append(f"spans received by the OTLP receiver: {received.get('spans', 'n/a')} "
                 f"in {received.get('exports', 'n/a')} exports")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per round (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each round (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--sampler-arg", type=float,
                        help="the parent-based ratio sampler's ratio on the 'edge on' stack (default: as shipped)")
    parser.add_argument("--stacks", type=int, default=2, help="stacks per configuration, pooled (default 2)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON result")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
