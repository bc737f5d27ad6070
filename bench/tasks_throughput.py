"""Benchmark end-to-end task throughput: N ``echo`` tasks through the platform beside Celery 5 on Redis.

Platform: the tasks are submitted with ``POST /api/v1/tasks`` by a fresh user (one per round, so the counts are
isolated), with a fixed number of requests in flight (aiohttp on uvloop). The clock runs from the first POST until
``GET /api/v1/tasks?status=completed&limit=1`` reports all of them completed (polled every 75 ms); tasks/s is
N / elapsed. Every task is then read back (100 per page) for the enqueue->start (``created_at`` -> ``started_at``)
and enqueue->finish (``created_at`` -> ``finished_at``) latencies.

Celery: the same N tasks, submitted with ``.delay()`` from this process to a worker started for the run
(``celery -A bench._celery_app worker --concurrency 2``, prefork, Redis broker DB 13 and result backend DB 14 on
127.0.0.1:6379, both flushed before and after). The clock runs from the first ``.delay()`` until every result is
ready; enqueue is the client's time just before ``.delay()``, start the task's own ``time.time()``, finish the
backend's ``date_done``.

The two run alternately for ``--rounds`` rounds and the medians are reported, with the ratio platform/celery and
whether the goals hold (>= 1000 tasks/s and >= 2x Celery). The CPU time each group of processes (gateway, tasks
service, task workers, PostgreSQL, Redis, Celery, this client ...) used during each phase is recorded too.

    .venv/bin/python bench/tasks_throughput.py [--tasks 2000] [--rounds 3] [--concurrency 48]
    .venv/bin/python bench/tasks_throughput.py --url http://127.0.0.1:10010 --api-key sk-sutazai-...

Traffic goes only to 127.0.0.1. The numbers are also written to ``bench/results/tasks_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from _platform import (
    BenchError,
    Platform,
    check_loopback_url,
    log_tails,
    machine,
    platform_stack,
    ratio,
    run_benchmark,
    say,
    stop_process,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "results" / "tasks_throughput.json"
CELERY_START_TIMEOUT_S = 60.0
CELERY_STOP_TIMEOUT_S = 30.0
REDIS_HOST, REDIS_PORT, BROKER_DB, BACKEND_DB = "127.0.0.1", 6379, 13, 14
POLL_INTERVAL_S = 0.075
PAGE_SIZE = 100
REQUEST_TIMEOUT_S = 30.0
WARMUP_TASKS = 50
BENCH_PASSWORD = "bench-password-1"
GOAL_TASKS_PER_S = 1000.0
GOAL_RATIO = 2.0
SYSTEMS = {"platform": "platform", "celery": "celery 5 (redis)"}

# Make ``bench._celery_app`` importable here (as in the worker, which gets the repository root on PYTHONPATH).
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))


@dataclass
class RoundResult:
    """One system's numbers: one round, or the median over the rounds (errors are then summed)."""

    tasks: int
    elapsed_s: float
    tasks_per_s: float
    submit_s: float  # first submit to last submit answered
    start_p50_ms: float
    start_p99_ms: float
    finish_p50_ms: float
    finish_p99_ms: float
    errors: int = 0
    # The client's submit time -> start: the same origin for both systems (for the platform, the POST's own
    # latency up to the INSERT is then included, as the .delay() publish is for Celery).
    submit_to_start_p50_ms: float = math.nan
    cpu_percent: dict[str, float] = field(default_factory=dict)  # 100 = one core, over the timed phase

    @property
    def cpu_ms_per_task(self) -> dict[str, float]:
        """CPU time per task of each process group: far less sensitive to other work on the machine."""
        return {group: round(percent / 100.0 * self.elapsed_s / self.tasks * 1000.0, 3)
                for group, percent in self.cpu_percent.items()}


# --- numbers -------------------------------------------------------------------------------------------------


def percentile_ms(values_s: list[float], q: float) -> float:
    """Nearest-rank percentile of durations in seconds, in milliseconds (NaN when there are none)."""
    if not values_s:
        return math.nan
    ordered = sorted(values_s)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1] * 1000.0


def parse_time(value: str | datetime) -> float:
    """An ISO timestamp (or datetime) as seconds since the epoch; naive means UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --- CPU use of the processes involved (Linux /proc; empty elsewhere) ---------------------------------------

_CPU_GROUPS: list[tuple[str, re.Pattern[str], bool]] = [  # (group, command line pattern, only our own children)
    ("postgres", re.compile(r"^postgres: |/bin/postgres\b"), False),
    ("redis", re.compile(r"redis-server"), False),
    ("nats", re.compile(r"nats-server"), False),
    ("gateway", re.compile(r"sutazai_gateway"), True),
    ("task workers", re.compile(r"sutazai_tasks\S*\s+worker"), True),
    ("tasks service", re.compile(r"sutazai_tasks"), True),
    ("celery worker", re.compile(r"celery.*bench\._celery_app"), True),
    ("other platform", re.compile(r"."), True),  # the other services, the model server, the launcher
]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu(roots: set[int], own_stack: bool) -> dict[int, tuple[str, float]]:
    """{pid: (group, CPU seconds used so far)}: the shared servers, this process, and the processes under
    ``roots`` (the stack and the Celery worker we started). Without ``own_stack`` (``--url``), any gateway and tasks
    process on the machine counts, and "other platform" is left out."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    me = os.getpid()
    seen: dict[int, tuple[int, str, float]] = {}  # pid -> (parent pid, command line, CPU seconds)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # the fields after the command name
        except (OSError, IndexError):
            continue
        seen[int(entry.name)] = (int(fields[1]), cmdline, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)

    def ours(pid: int) -> bool:
        for _ in range(64):
            if pid in roots:
                return True
            if pid not in seen or pid <= 1:
                return False
            pid = seen[pid][0]
        return False

    found: dict[int, tuple[str, float]] = {}
    for pid, (_, cmdline, cpu_s) in seen.items():
        if pid == me:
            found[pid] = ("bench client", cpu_s)
            continue
        parent = seen.get(seen[pid][0])
        if "multiprocessing" in cmdline and parent and "sutazai_gateway" in parent[1]:
            cmdline = parent[1]  # a gateway worker (SUTAZAI_GATEWAY_WORKERS) counts as the gateway
        for group, pattern, own_only in _CPU_GROUPS:
            if not pattern.search(cmdline):
                continue
            if own_only and (own_stack or group == "celery worker") and not ours(pid):
                continue
            if own_only and not own_stack and group == "other platform":
                break  # without the stack's process tree, "anything" is too broad
            found[pid] = (group, cpu_s)
            break
    return found


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle and iowait)."""
    try:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return math.nan
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS


class CpuMeter:
    """CPU percent (100 = one core) per process group between ``start()`` and ``stop()``, and of the whole
    machine ("machine", every process on it, ours or not)."""

    roots: ClassVar[set[int]] = set()  # the stack and the Celery worker, once started
    own_stack: ClassVar[bool] = False  # whether we started the stack (else --url)

    def __init__(self) -> None:
        self._before: dict[int, tuple[str, float]] = {}
        self._machine = 0.0
        self._started = 0.0

    def start(self) -> None:
        self._before = _process_cpu(self.roots, self.own_stack)
        self._machine = _machine_busy_s()
        self._started = time.perf_counter()

    def stop(self) -> dict[str, float]:
        after = _process_cpu(self.roots, self.own_stack)
        wall = time.perf_counter() - self._started
        used: dict[str, float] = {"machine": _machine_busy_s() - self._machine}
        for pid, (group, cpu_s) in after.items():
            before = self._before.get(pid)
            # A process that started during the phase counts whole; one that ended during it is missed.
            used[group] = used.get(group, 0.0) + (cpu_s - before[1] if before else cpu_s)
        return {group: round(100.0 * cpu / wall, 1) for group, cpu in sorted(used.items()) if wall > 0 and cpu >= 0}


# --- the platform --------------------------------------------------------------------------------------------


class PlatformClient:
    """The task API through one aiohttp session, as an admin (API key) or as a user (bearer token)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, headers: dict[str, str]) -> None:
        self.session, self.base_url, self.headers = session, base_url, headers

    async def call(self, method: str, path: str, expect: int, body: Any = None) -> Any:
        """One request; a failed request or an unexpected status is a BenchError (a request's own timeout too,
        so that a TimeoutError always means the phase's deadline)."""
        try:
            async with self.session.request(method, self.base_url + path, json=body,
                                            headers=self.headers) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BenchError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from None
        if response.status != expect:
            raise BenchError(f"{method} {path} answered {response.status}: {text[:300]}")
        return json.loads(text)

    async def as_new_user(self, admin_key: str) -> PlatformClient:
        """Create a user (so that its task counts start at zero) and log in as it."""
        username = f"bench-{secrets.token_hex(6)}"
        admin = PlatformClient(self.session, self.base_url, {"X-API-Key": admin_key})
        await admin.call("POST", "/api/v1/auth/users", 201, {"username": username, "password": BENCH_PASSWORD})
        token = await admin.call("POST", "/api/v1/auth/login", 200, {"username": username, "password": BENCH_PASSWORD})
        return PlatformClient(self.session, self.base_url, {"Authorization": f"Bearer {token['access_token']}"})

    async def completed(self) -> int:
        return int((await self.call("GET", "/api/v1/tasks?status=completed&limit=1", 200))["total"])

    async def status_counts(self) -> dict[str, int]:
        counts = {}
        for status in ("queued", "running", "retrying", "completed", "failed", "dead", "cancelled"):
            counts[status] = int((await self.call("GET", f"/api/v1/tasks?status={status}&limit=1", 200))["total"])
        return counts


@dataclass
class Submitted:
    submit_times: dict[str, float] = field(default_factory=dict)  # task id -> time.time() just before the POST
    errors: list[str] = field(default_factory=list)
    finished_at: float = 0.0  # perf_counter when the last POST was answered


async def submit_all(
    client: PlatformClient, count: int, concurrency: int, out: Submitted, batch_size: int = 1
) -> None:
    """POST ``count`` echo tasks with ``concurrency`` requests in flight: one task per request, or
    ``batch_size`` per request through ``POST /api/v1/tasks/batch``."""
    batches = iter([list(range(start, min(count, start + batch_size))) for start in range(0, count, batch_size)])

    def body(index: int) -> dict[str, Any]:
        return {"task_type": "echo", "payload": {"n": index, "text": "hello"}, "priority": 0}

    async def sender() -> None:
        for batch in batches:
            submitted = time.time()
            try:
                if batch_size == 1:
                    reply = await client.call("POST", "/api/v1/tasks", 202, body(batch[0]))
                    out.submit_times[reply["task_id"]] = submitted
                else:
                    reply = await client.call("POST", "/api/v1/tasks/batch", 202, {"tasks": [body(i) for i in batch]})
                    for item in reply["items"]:
                        out.submit_times[item["task_id"]] = submitted
            except BenchError as exc:
                out.errors.append(str(exc))

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    out.finished_at = time.perf_counter()


async def wait_completed(client: PlatformClient, submitting: asyncio.Task[None], out: Submitted) -> float:
    """Poll the completed count until every accepted task is completed; return perf_counter at that answer."""
    while True:
        total = await client.completed()
        now = time.perf_counter()
        if submitting.done() and total >= len(out.submit_times):
            return now
        await asyncio.sleep(POLL_INTERVAL_S)


async def fetch_completed(client: PlatformClient, expected: int) -> list[dict[str, Any]]:
    """Every completed task of the user, 100 per page (deduplicated by id)."""
    tasks: dict[str, dict[str, Any]] = {}
    offset = 0
    while offset < expected + PAGE_SIZE:
        page = await client.call("GET", f"/api/v1/tasks?status=completed&limit={PAGE_SIZE}&offset={offset}", 200)
        for item in page["items"]:
            tasks[item["task_id"]] = item
        offset += PAGE_SIZE
        if offset >= int(page["total"]) or not page["items"]:
            break
    return list(tasks.values())


async def platform_warmup(client: PlatformClient, admin_key: str, timeout_s: float) -> None:
    """A few tasks by a throwaway user, so connections, caches and the workers are warm."""
    user = await client.as_new_user(admin_key)
    out = Submitted()
    async with asyncio.timeout(timeout_s):
        submitting = asyncio.create_task(submit_all(user, WARMUP_TASKS, 8, out))
        await wait_completed(user, submitting, out)
        await submitting


async def platform_round(base_url: str, admin_key: str, args: argparse.Namespace, warmup: bool) -> RoundResult:
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        root = PlatformClient(session, base_url, {})
        if warmup:
            say(f"platform warm-up: {WARMUP_TASKS} tasks ...")
            await platform_warmup(root, admin_key, args.timeout)
        user = await root.as_new_user(admin_key)
        out = Submitted()
        meter = CpuMeter()
        meter.start()
        try:
            async with asyncio.timeout(args.timeout):
                started = time.perf_counter()
                submitting = asyncio.create_task(submit_all(user, args.tasks, args.concurrency, out, args.batch_size))
                try:
                    done_at = await wait_completed(user, submitting, out)
                finally:
                    if not submitting.done():
                        submitting.cancel()
                await submitting
        except TimeoutError:
            try:
                counts: Any = await user.status_counts()
            except BenchError as exc:
                counts = f"(unknown: {exc})"
            raise BenchError(f"the platform did not complete {len(out.submit_times)} accepted tasks within "
                             f"{args.timeout:.0f} s; the user's tasks by status: {counts}; "
                             f"submit errors: {len(out.errors)} {out.errors[:3]}") from None
        cpu = meter.stop()
        accepted = len(out.submit_times)
        if not accepted:
            raise BenchError(f"every submission failed, e.g. {out.errors[0] if out.errors else '?'}")
        if out.errors:
            say(f"  {len(out.errors)} submissions failed, e.g. {out.errors[0]}")
        async with asyncio.timeout(args.timeout):
            tasks = await fetch_completed(user, accepted)
    mine = [t for t in tasks if t["task_id"] in out.submit_times]
    if len(mine) != accepted:
        raise BenchError(f"read back {len(mine)} completed tasks, expected {accepted}")
    created = {t["task_id"]: parse_time(t["created_at"]) for t in mine}
    started_at = {t["task_id"]: parse_time(t["started_at"]) for t in mine}
    finished = {t["task_id"]: parse_time(t["finished_at"]) for t in mine}
    elapsed = done_at - started
    return RoundResult(
        tasks=accepted, elapsed_s=elapsed, tasks_per_s=accepted / elapsed, submit_s=out.finished_at - started,
        start_p50_ms=percentile_ms([started_at[i] - created[i] for i in created], 0.50),
        start_p99_ms=percentile_ms([started_at[i] - created[i] for i in created], 0.99),
        finish_p50_ms=percentile_ms([finished[i] - created[i] for i in created], 0.50),
        finish_p99_ms=percentile_ms([finished[i] - created[i] for i in created], 0.99),
        errors=len(out.errors),
        submit_to_start_p50_ms=percentile_ms([started_at[i] - out.submit_times[i] for i in created], 0.50),
        cpu_percent=cpu,
    )


def run_async(coroutine: Coroutine[Any, Any, RoundResult]) -> RoundResult:
    """Run on uvloop when it is installed (as the servers do), else on the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# --- celery --------------------------------------------------------------------------------------------------


def flush_redis_dbs() -> None:
    import redis

    for db in (BROKER_DB, BACKEND_DB):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=10)
        try:
            keys = client.dbsize()
            client.flushdb()
        finally:
            client.close()
        if keys:
            say(f"  flushed redis db {db} ({keys} keys)")


@contextmanager
def celery_worker(args: argparse.Namespace) -> Iterator[None]:
    """A Celery worker (prefork, concurrency 2) on Redis DBs 13/14, flushed before and after; warmed up."""
    from celery.result import ResultSet

    from bench._celery_app import echo

    try:
        flush_redis_dbs()
    except Exception as exc:  # redis-py raises its own ConnectionError, not OSError
        raise BenchError(f"cannot reach Redis on {REDIS_HOST}:{REDIS_PORT}: {exc}") from exc
    workdir = Path(tempfile.mkdtemp(prefix="celery-bench-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "celery", "-A", "bench._celery_app", "worker", "--concurrency",
               str(args.celery_concurrency), "--loglevel", "warning", "-n", f"bench-{os.getpid()}@%h"]
    say(f"starting the Celery worker: {' '.join(command[2:])}")
    with open(workdir / "worker.log", "wb") as out:
        process = subprocess.Popen(command, cwd=REPO_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    CpuMeter.roots.add(process.pid)
    try:
        try:
            warm = [echo.delay({"n": i}) for i in range(WARMUP_TASKS)]
            ResultSet(warm).join_native(timeout=CELERY_START_TIMEOUT_S)
        except Exception as exc:
            log = (workdir / "worker.log").read_text(errors="replace")[-3000:]
            raise BenchError(f"the Celery worker did not answer within {CELERY_START_TIMEOUT_S:.0f} s "
                             f"(exit code {process.poll()}): {exc}\n{log}") from exc
        say("Celery worker ready")
        yield
    finally:
        say("stopping the Celery worker ...")
        stop_process(process, timeout_s=CELERY_STOP_TIMEOUT_S, group=True)
        try:
            flush_redis_dbs()
        except Exception as exc:
            say(f"could not flush redis dbs {BROKER_DB}/{BACKEND_DB}: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)


def celery_round(args: argparse.Namespace) -> RoundResult:
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import ResultSet

    from bench._celery_app import echo

    submit_times: list[float] = []
    results = []
    meter = CpuMeter()
    meter.start()
    started = time.perf_counter()
    deadline = started + args.timeout
    for index in range(args.tasks):
        submit_times.append(time.time())
        results.append(echo.delay({"n": index, "text": "hello"}))
        if time.perf_counter() > deadline:
            raise BenchError(f"submitting {args.tasks} Celery tasks took more than {args.timeout:.0f} s")
    submitted = time.perf_counter()
    try:
        ResultSet(results).join_native(timeout=max(1.0, deadline - submitted))
    except CeleryTimeout:
        ready = sum(r.ready() for r in results)
        raise BenchError(f"Celery completed {ready} of {args.tasks} tasks within {args.timeout:.0f} s") from None
    done_at = time.perf_counter()
    cpu = meter.stop()
    failed = [r for r in results if not r.successful()]
    if failed:
        raise BenchError(f"{len(failed)} Celery tasks failed, e.g. {failed[0].result!r}")
    start_s = [r.result["started"] - t for r, t in zip(results, submit_times, strict=True)]
    finish_s = [parse_time(r.date_done) - t for r, t in zip(results, submit_times, strict=True)]
    elapsed = done_at - started
    return RoundResult(
        tasks=args.tasks, elapsed_s=elapsed, tasks_per_s=args.tasks / elapsed, submit_s=submitted - started,
        start_p50_ms=percentile_ms(start_s, 0.50), start_p99_ms=percentile_ms(start_s, 0.99),
        finish_p50_ms=percentile_ms(finish_s, 0.50), finish_p99_ms=percentile_ms(finish_s, 0.99),
        submit_to_start_p50_ms=percentile_ms(start_s, 0.50), cpu_percent=cpu,
    )


# --- rounds and report ---------------------------------------------------------------------------------------


def run_rounds(base_url: str, admin_key: str, args: argparse.Namespace) -> dict[str, list[RoundResult]]:
    """Both systems once per round, reversing the order each round so drift hits both alike."""
    rounds: dict[str, list[RoundResult]] = {name: [] for name in SYSTEMS}
    for index in range(args.rounds):
        order = list(SYSTEMS) if index % 2 == 0 else list(reversed(SYSTEMS))
        for name in order:
            say(f"round {index + 1}/{args.rounds}: {SYSTEMS[name]}, {args.tasks} tasks ...")
            if name == "platform":
                result = run_async(platform_round(base_url, admin_key, args, warmup=index == 0))
            else:
                result = celery_round(args)
            rounds[name].append(result)
            cpu = ", ".join(f"{group} {percent:.0f}% ({result.cpu_ms_per_task[group]:.2f} ms/task)"
                            for group, percent in result.cpu_percent.items())
            say(f"  {result.tasks_per_s:7.0f} tasks/s in {result.elapsed_s:.2f} s (submitting took "
                f"{result.submit_s:.2f} s); enqueue->start p50 {result.start_p50_ms:.1f} ms p99 "
                f"{result.start_p99_ms:.1f} ms; enqueue->finish p50 {result.finish_p50_ms:.1f} ms p99 "
                f"{result.finish_p99_ms:.1f} ms; errors {result.errors}")
            say(f"  CPU (100% = one core): {cpu or 'n/a'}")
    return rounds


def median_of(rounds: list[RoundResult]) -> RoundResult:
    """Median of each number over the rounds (taken separately); errors are summed."""
    groups = sorted({group for r in rounds for group in r.cpu_percent})
    return RoundResult(
        tasks=rounds[0].tasks,
        elapsed_s=statistics.median(r.elapsed_s for r in rounds),
        tasks_per_s=statistics.median(r.tasks_per_s for r in rounds),
        submit_s=statistics.median(r.submit_s for r in rounds),
        start_p50_ms=statistics.median(r.start_p50_ms for r in rounds),
        start_p99_ms=statistics.median(r.start_p99_ms for r in rounds),
        finish_p50_ms=statistics.median(r.finish_p50_ms for r in rounds),
        finish_p99_ms=statistics.median(r.finish_p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        submit_to_start_p50_ms=statistics.median(r.submit_to_start_p50_ms for r in rounds),
        cpu_percent={g: statistics.median(r.cpu_percent.get(g, 0.0) for r in rounds) for g in groups},
    )


def goals(medians: dict[str, RoundResult]) -> dict[str, Any]:
    throughput_ratio = ratio(medians["platform"].tasks_per_s, medians["celery"].tasks_per_s)
    return {
        "ratio_platform_over_celery": {
            "throughput": throughput_ratio,
            "start_p50": ratio(medians["platform"].start_p50_ms, medians["celery"].start_p50_ms),
            "finish_p50": ratio(medians["platform"].finish_p50_ms, medians["celery"].finish_p50_ms),
        },
        "platform_at_least_1000_tasks_per_s": medians["platform"].tasks_per_s >= GOAL_TASKS_PER_S,
        "platform_at_least_2x_celery": throughput_ratio >= GOAL_RATIO,
    }


def format_table(medians: dict[str, RoundResult], verdict: dict[str, Any]) -> str:
    header = (f"{'system':<18} {'tasks/s':>8} {'start p50':>10} {'start p99':>10} {'finish p50':>11} "
              f"{'finish p99':>11} {'errors':>7}")
    lines = [header, f"{'':<18} {'':>8} {'ms':>10} {'ms':>10} {'ms':>11} {'ms':>11}"]
    for name, m in medians.items():
        lines.append(f"{SYSTEMS[name]:<18} {m.tasks_per_s:>8.0f} {m.start_p50_ms:>10.1f} {m.start_p99_ms:>10.1f} "
                     f"{m.finish_p50_ms:>11.1f} {m.finish_p99_ms:>11.1f} {m.errors:>7}")
    for name, m in medians.items():
        per_task = sorted(m.cpu_ms_per_task.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{group} {ms:.2f}" for group, ms in per_task if ms >= 0.05)
        if shown:
            lines.append(f"CPU ms per task, {SYSTEMS[name]}: {shown}")
    ratios = verdict["ratio_platform_over_celery"]
    lines.append(f"ratio platform/celery: throughput {ratios['throughput']:.2f}, enqueue->start p50 "
                 f"{ratios['start_p50']:.2f}, enqueue->finish p50 {ratios['finish_p50']:.2f}")

    def mark(ok: bool) -> str:
        return "yes" if ok else "NO"

    lines.append(f"goal >= {GOAL_TASKS_PER_S:.0f} tasks/s: {mark(verdict['platform_at_least_1000_tasks_per_s'])}; "
                 f"goal >= {GOAL_RATIO:g}x celery: {mark(verdict['platform_at_least_2x_celery'])}")
    return "\n".join(lines)


def write_json(path: Path, rounds: dict[str, list[RoundResult]], medians: dict[str, RoundResult],
               verdict: dict[str, Any], args: argparse.Namespace, gateway: str) -> None:
    report = {
        "benchmark": "tasks_throughput",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load": {
            "tasks": args.tasks, "rounds": args.rounds, "platform_requests_in_flight": args.concurrency,
            "platform_tasks_per_request": args.batch_size,
            "poll_interval_s": POLL_INTERVAL_S, "celery_concurrency": args.celery_concurrency,
            "gateway": gateway, "started_stack": not args.url,
        },
        "definitions": {
            "tasks_per_s": "tasks / (first submit -> all completed)",
            "start": "platform: created_at -> started_at; celery: client time before .delay() -> task start",
            "finish": "platform: created_at -> finished_at; celery: client time before .delay() -> date_done",
            "submit_to_start_p50_ms": "client time before the POST / .delay() -> start, for both",
            "cpu_percent": "CPU used by each process group during the timed phase, 100 = one core; 'machine' is "
                           "every process on the machine, ours or not",
            "cpu_ms_per_task": "the same as CPU milliseconds per task",
        },
        "systems": {
            name: {"label": SYSTEMS[name],
                   "median": {**asdict(medians[name]), "cpu_ms_per_task": medians[name].cpu_ms_per_task},
                   "rounds": [{**asdict(r), "cpu_ms_per_task": r.cpu_ms_per_task} for r in results]}
            for name, results in rounds.items()
        },
        **verdict,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# --- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="use this running gateway (e.g. http://127.0.0.1:10010) instead of starting "
                                      "the platform; needs --api-key")
    parser.add_argument("--api-key", help="an admin API key for --url (to create the benchmark users)")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per round and system (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per system (default 3)")
    parser.add_argument("--concurrency", type=int, default=48, help="platform requests in flight (default 48)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="tasks per platform request: 1 = POST /api/v1/tasks each (default); "
                             "N > 1 = POST /api/v1/tasks/batch with N tasks")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per phase (default 180)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON result")
    args = parser.parse_args(argv)
    check_loopback_url(parser, args.url)
    if args.url and not args.api_key:
        parser.error("--url needs --api-key (an admin key, to create the benchmark users)")
    if not 1 <= args.tasks <= 100_000 or not 1 <= args.rounds <= 20 or not 1 <= args.concurrency <= 256:
        parser.error("--tasks must be 1..100000, --rounds 1..20, --concurrency 1..256")
    if not 1 <= args.batch_size <= 500:
        parser.error("--batch-size must be 1..500")
    if not 1 <= args.celery_concurrency <= 64 or not 1 <= args.timeout <= 1800:
        parser.error("--celery-concurrency must be 1..64 and --timeout 1..1800 s")
    return args



@contextmanager
def gateway(args: argparse.Namespace) -> Iterator[tuple[str, str, Platform | None]]:
    """The given gateway, or a platform started for this run (then also yielded, for its logs)."""
    if args.url:
        yield args.url.rstrip("/"), args.api_key, None
        return
    with platform_stack() as stack:
        CpuMeter.roots.add(stack.pid)
        CpuMeter.own_stack = True
        yield stack.url, stack.admin_key, stack


def benchmark(args: argparse.Namespace) -> None:
    with gateway(args) as (url, api_key, stack), celery_worker(args):
        say(f"{args.tasks} echo tasks per round, {args.rounds} rounds; platform: {args.concurrency} requests in "
            f"flight; celery: .delay() from this process, worker concurrency {args.celery_concurrency}")
        try:
            rounds = run_rounds(url, api_key, args)
        except BenchError as exc:
            if stack is not None:  # platform_stack keeps the home on a BenchError
                raise BenchError(f"{exc}\n{log_tails(stack.home)}") from exc
            raise
    medians = {name: median_of(results) for name, results in rounds.items()}
    verdict = goals(medians)
    print(format_table(medians, verdict))  # noqa: T201
    write_json(args.output, rounds, medians, verdict, args, url)
    say(f"medians of {args.rounds} rounds; written to {args.output}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
