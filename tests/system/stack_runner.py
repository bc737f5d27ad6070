"""Start the platform the way ``make run`` does (``python -m sutazai_stack run``), for system tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import psutil
from sutazai_stack.harness import Servers, drop_database, with_path

# Variables that would point the stack at other servers than the test wants.
_CLEARED = ("DATABASE_URL", "REDIS_URL", "NATS_URL", "SUTAZAI_MODEL_URL", "SUTAZAI_EMBEDDED", "SUTAZAI_FREE_PORTS")

__all__ = ["RunningStack", "Servers", "alive", "run_stack", "stop", "wait_until"]


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    home: Path
    state: dict  # type: ignore[type-arg]

    @property
    def url(self) -> str:
        return str(self.state["gateway_url"])

    def pid(self, name: str) -> int:
        return int(self.state["services"][name]["pid"])

    def child_pids(self) -> list[int]:
        pids = [int(s["pid"]) for s in self.state["services"].values()]
        pids += [int(i["pid"]) for i in self.state["infra"].values() if i["pid"]]
        return pids

    @property
    def secrets(self) -> dict[str, str]:
        return dict(json.loads((self.home / "secrets.json").read_text()))

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.secrets["admin_api_key"]}

    def log(self) -> str:
        return (self.home / "stack.log").read_text(errors="replace")

    def detailed_health(self) -> dict:  # type: ignore[type-arg]
        response = httpx.get(self.url + "/api/v1/health/detailed", timeout=10)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


@contextlib.contextmanager
def run_stack(home: Path, servers: Servers | None, *, timeout_s: float = 600, **env: str) -> Iterator[RunningStack]:
    """The stack on free ports, on the session's ``servers`` (``None``: the stack resolves its own, as
    ``make run`` does). Unless the caller names a database, the stack gets one of its own (and so its
    own JetStream namespace, chat cache prefix and gateway key prefix), dropped with its streams afterwards;
    ``env`` wins. Rate limits are high (see below) unless ``env`` sets them."""
    home.mkdir(parents=True, exist_ok=True)
    own_database = None
    if servers is not None:
        if "DATABASE_URL" not in env:
            own_database = env.setdefault("SUTAZAI_DATABASE_NAME", f"systest_{uuid.uuid4().hex[:10]}")
            env["DATABASE_URL"] = with_path(servers.postgres, own_database)
        env.setdefault("REDIS_URL", servers.redis)
        env.setdefault("NATS_URL", servers.nats)
    # The original's rate limits (60 requests a minute per user and per address) would refuse the traffic of
    # most system tests, all from one address: a test stack's are high unless the test names its own (the
    # defaults are proved in services/gateway/tests/test_edge_processes.py). The limiter still runs.
    for name in ("DEFAULT", "CHAT", "CHAT_STREAM", "ANONYMOUS"):
        env.setdefault(f"SUTAZAI_GATEWAY_RATE_LIMIT_{name}", "100000/minute")
    # Generous bounds (not sleeps): on a shared 2-core machine the embeddings server alone took 110 s.
    env.setdefault("SUTAZAI_START_TIMEOUT_S", "300")
    full_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    full_env.update(SUTAZAI_HOME=str(home), SUTAZAI_FREE_PORTS="1", **env)
    with open(home / "stack.log", "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sutazai_stack", "run"], env=full_env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    stack = RunningStack(process, home, {})
    try:
        state_file = home / "run" / "stack.json"
        deadline = time.monotonic() + timeout_s
        while not state_file.exists():
            if process.poll() is not None:
                raise AssertionError(f"the stack exited with {process.returncode}:\n{stack.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the stack did not start within {timeout_s} s:\n{stack.log()}")
            time.sleep(0.2)
        stack.state = json.loads(state_file.read_text())
        yield stack
    finally:
        stop(stack)
        if servers is not None and own_database:
            asyncio.run(_drop(servers, own_database))


async def _drop(servers: Servers, database: str) -> None:
    """Remove what a stack with its own database left on the session's servers."""
    await drop_database(servers.postgres, database)
    nc = await nats.connect(servers.nats, connect_timeout=2, allow_reconnect=False)
    try:
        js = nc.jetstream(timeout=5)
        for stream in await js.streams_info():
            registry = f"KV_sutazai_registry_{database}"  # the stack's service registry (and its _external)
            if stream.config.name and stream.config.name.startswith((f"{database}_", registry)):
                await js.delete_stream(stream.config.name)
    finally:
        await nc.close()


def stop(stack: RunningStack, timeout_s: float = 40) -> None:
    """SIGTERM the stack (what Ctrl-C does) and wait; kill whatever is left so no test leaks processes."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        try:
            stack.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait(5)
    for pid in stack.child_pids() if stack.state else []:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
