"""Shared by the benchmarks: start the platform for a run, stop processes, common CLI plumbing.

The benchmarks run as scripts (``python bench/x.py``), so ``bench/`` is on ``sys.path`` and they import this
module as ``_platform``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sutazai_stack.config import model_server_python

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# the model server, six services and the gateway workers, on a busy machine
REPO = Path(__file__).resolve().parents[1]
STACK_START_TIMEOUT_S = float(os.environ.get("SUTAZAI_BENCH_START_TIMEOUT_S", "300"))
STOP_TIMEOUT_S = 90.0  # the stack stops its children one by one, each within 10 s


class BenchError(RuntimeError):
    """A server did not start or a measurement failed; the message says why."""


@dataclass
class Platform:
    """A platform started for a run: its gateway URL, admin API key, home and launcher pid."""

    url: str
    admin_key: str
    home: Path
    pid: int


def say(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the result table."""
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def machine() -> dict[str, object]:
    """What a result file says of the machine it was measured on (the load average: the machine is shared)."""
    import platform

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_end": os.getloadavg()}


def http_load(args: argparse.Namespace, **extra: object) -> dict[str, object]:
    """The load an HTTP benchmark applied (its --connections, --duration, --warmup, --rounds), for its result file."""
    return {"generator": "wrk" if shutil.which("wrk") else "aiohttp", "connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds, **extra}


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes -----------------------------------------------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes], timeout_s: float, group: bool = False) -> None:
    """SIGTERM, wait, and SIGKILL (the whole process group if ``group``) only if it did not stop in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        say(f"pid {process.pid} did not stop within {timeout_s:.0f} s; killing it")
        if group:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            process.kill()
        process.wait(10)


def log_tails(home: Path, lines: int = 15) -> str:
    """The end of every log the stack wrote, to explain a failed start or a failed measurement."""
    parts = []
    for log in sorted([home / "stack.out", *(home / "logs").glob("*.log")]):
        if log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs in {home})"


def wait_for_stack(process: subprocess.Popen[bytes], home: Path) -> tuple[str, str]:
    """Poll for ``run/stack.json``; return the gateway URL it names and the admin API key."""
    state_file = home / "run" / "stack.json"
    deadline = time.monotonic() + STACK_START_TIMEOUT_S
    while not state_file.exists():
        if process.poll() is not None:
            raise BenchError(f"sutazai_stack exited with code {process.returncode}:\n{log_tails(home)}")
        if time.monotonic() > deadline:
            raise BenchError(f"sutazai_stack was not ready within {STACK_START_TIMEOUT_S:.0f} s:\n{log_tails(home)}")
        time.sleep(0.5)
    url = str(json.loads(state_file.read_text())["gateway_url"])
    api_key = str(json.loads((home / "secrets.json").read_text())["admin_api_key"])
    return url.rstrip("/"), api_key


def model_server_env() -> dict[str, str]:
    """``SUTAZAI_MODEL_SERVER_PYTHON`` from ``.sutazai/model-server-python`` (written by ``make sync``) when it is
    not set, so a benchmark run by hand finds the model server as ``make bench`` does."""
    try:
        return {"SUTAZAI_MODEL_SERVER_PYTHON": str(model_server_python(REPO))}
    except LookupError:  # the launcher then runs the model server with this interpreter, as `make run` would
        return {}


@contextmanager
def platform_stack(extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """The whole platform on free ports in a temporary home, with ``extra_env`` added to its environment.

    The home (with the logs) is removed afterwards, unless a start or a measurement failed (a BenchError)."""
    home = Path(tempfile.mkdtemp(prefix="sutazai-bench-"))
    # SUTAZAI_BENCH_DATABASE: another database (and so JetStream namespace) than other benchmarks on this NATS.
    database = os.environ.get("SUTAZAI_BENCH_DATABASE", "sutazai_bench")
    env = {**os.environ, "SUTAZAI_DATABASE_NAME": database, **model_server_env(), **(extra_env or {})}
    # The original's rate limits (60 a minute) would refuse a benchmark's load: the limiter runs, with room.
    for name in ("DEFAULT", "CHAT", "CHAT_STREAM", "ANONYMOUS"):
        env.setdefault(f"SUTAZAI_GATEWAY_RATE_LIMIT_{name}", "1000000000/minute")
    say(f"starting the platform (home {home}) ...")
    with open(home / "stack.out", "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sutazai_stack", "run", "--free-ports", "--home", str(home)],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop it in order
        )
    keep = False
    try:
        url, api_key = wait_for_stack(process, home)
        say(f"platform ready: {url}")
        yield Platform(url=url, admin_key=api_key, home=home, pid=process.pid)
    except BenchError:
        keep = True
        raise
    finally:
        say("stopping the platform ...")
        stop_process(process, timeout_s=STOP_TIMEOUT_S)
        if keep:
            say(f"kept {home} for its logs")
        else:
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def existing_or_new(home: Path | None, extra_env: dict[str, str]) -> Iterator[Platform]:
    """The stack already running from ``home`` (its ``run/stack.json``), or a new one on free ports."""
    if home is None:
        with platform_stack(extra_env) as stack:
            yield stack
        return
    state = json.loads((home / "run" / "stack.json").read_text())
    key = json.loads((home / "secrets.json").read_text())["admin_api_key"]
    yield Platform(url=state["gateway_url"], admin_key=key, home=home, pid=state["pid"])


def signed_metadata(home: Path, user_id: str, *, admin: bool = False) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``user_id``'s identity with a proof signed by the stack's own key (the launcher's
    ``<home>/identity``), for benchmarks that call a service's gRPC port directly: services refuse bare
    identity metadata."""
    from sutazai_runtime.identity import ADMIN, USER, Identity, IdentitySettings
    from sutazai_runtime.identity.keys import PRIVATE_FILE, PUBLIC_FILE

    settings = IdentitySettings(private_key_file=home / "identity" / PRIVATE_FILE,
                                public_keys_file=home / "identity" / PUBLIC_FILE)
    roles = frozenset({ADMIN, USER} if admin else {USER})
    return settings.minter("gateway").attach(Identity(user_id, roles)).to_metadata()


# --- command line --------------------------------------------------------------------------------------------


def check_loopback_url(parser: argparse.ArgumentParser, url: str | None) -> None:
    """Reject a ``--url`` that is not on this machine: benchmark traffic goes only to 127.0.0.1."""
    if url and urlsplit(url).hostname not in LOOPBACK:
        parser.error("--url must point at this machine (127.0.0.1 or localhost)")


def run_benchmark(benchmark: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run ``benchmark(args)``; the exit code: 0, 1 on a BenchError, 130 when interrupted."""
    # SIGTERM unwinds like Ctrl-C, so the processes the benchmark started are stopped either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        benchmark(args)
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0
