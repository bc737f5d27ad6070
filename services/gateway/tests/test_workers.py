"""Several gateway processes on one port (``SUTAZAI_GATEWAY_WORKERS``), against the real PostgreSQL, Redis and
NATS: each process keeps its own breakers, a reset reaches every one of them, metrics are served once, and
the workers end with the supervisor, even when it is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sutazai_gateway.auth import api_keys

START_TIMEOUT_S = 240.0  # each worker imports the whole app afresh (spawn); slow on a busy machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, key: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""  # not listening (yet)


def _workers_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == pid and b"spawn_main" in cmdline:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def gateway(postgres_url: str, redis_url: str, nats_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """One supervisor with two workers for the module; the last test kills it."""
    tmp_path = tmp_path_factory.mktemp("gateway")
    port, metrics_port, key = _free_port(), _free_port(), api_keys.generate_key()
    env = {
        **os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "NATS_URL": nats_url,
        "SUTAZAI_GATEWAY_PORT": str(port), "SUTAZAI_GATEWAY_METRICS_PORT": str(metrics_port),
        "SUTAZAI_GATEWAY_WORKERS": "2", "SUTAZAI_GATEWAY_JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_USERNAME": f"adm_{uuid.uuid4().hex[:10]}",
        "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_PASSWORD": uuid.uuid4().hex, "SUTAZAI_GATEWAY_BOOTSTRAP_API_KEY": key,
        # Nothing listens on the agents address: every agents call fails, one failure opens the breaker.
        "SUTAZAI_GATEWAY_AGENTS_ADDR": f"127.0.0.1:{_free_port()}", "SUTAZAI_GATEWAY_BREAKER_FAILURES": "1",
    }
    log = (tmp_path / "gateway.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "sutazai_gateway"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(_workers_of(process.pid)) < 2 or _get(url + "/health-emergency")[0] != 200:
            assert process.poll() is None, (tmp_path / "gateway.log").read_text()
            assert time.monotonic() < deadline, "the gateway's workers did not answer in time"
            time.sleep(0.2)
        yield {"url": url, "key": key, "process": process, "metrics": f"http://127.0.0.1:{metrics_port}/metrics"}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()  # its workers follow (they die with their parent)
                process.wait(10)
        log.close()


def _agents_breakers(url: str, key: str, want: int, deadline_s: float = 30.0) -> dict[int, str]:
    """The agents breaker's state in each process, from answers until ``want`` processes have been seen."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + deadline_s
    while len(seen) < want and time.monotonic() < deadline:
        status, body = _get(url + "/api/v1/health/circuit-breakers", key)
        assert status == 200
        reply = json.loads(body)
        seen[reply["process"]] = reply["circuit_breakers"]["agents"]["state"]
    return seen


def test_each_process_has_its_breakers_and_a_reset_closes_them_all(gateway: dict[str, object]) -> None:
    url, key = str(gateway["url"]), str(gateway["key"])
    process = gateway["process"]
    assert isinstance(process, subprocess.Popen)
    workers = _workers_of(process.pid)
    # Each connection lands on one of the workers; keep failing until both have opened their breaker.
    deadline = time.monotonic() + 60
    while True:
        status, body = _get(url + "/api/v1/agents/some-agent", key)
        assert status == 503, body
        states = _agents_breakers(url, key, want=2)
        if len(states) == 2 and set(states.values()) == {"open"}:
            break
        assert time.monotonic() < deadline, f"both workers' agents breakers should have opened: {states}"
    assert set(states) == workers

    status, _ = _get(url + "/api/v1/health/circuit-breakers/reset", key, method="POST")
    assert status == 200
    deadline = time.monotonic() + 10
    while set(states := _agents_breakers(url, key, want=2).values()) != {"closed"}:
        assert time.monotonic() < deadline, f"the reset did not reach every worker: {states}"
        time.sleep(0.05)

    status, _ = _get(str(gateway["metrics"]))
    assert status == 200  # served once, by the supervisor, for all workers


def test_the_performance_summary_counts_every_process_s_requests(gateway: dict[str, object]) -> None:
    """Whichever process answers, /api/v1/performance/metrics sums the requests of both (multi-process files)."""
    url, key = str(gateway["url"]), str(gateway["key"])
    route = "GET /api/v1/agents/{agent_id}"

    def report() -> dict:  # type: ignore[type-arg]
        status, body = _get(url + "/api/v1/performance/metrics", key)
        assert status == 200, body
        return json.loads(body)  # type: ignore[no-any-return]

    before = report()["gateway"]["routes"].get(route, {}).get("requests_total", 0)
    for _ in range(20):  # one connection each: the kernel spreads them over both workers
        assert _get(url + "/api/v1/agents/some-agent", key)[0] == 503
    totals: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while len(totals) < 2 and time.monotonic() < deadline:
        body = report()
        totals[body["circuit_breakers"]["process"]] = body["gateway"]["routes"][route]["requests_total"]
    assert len(totals) == 2, "only one worker answered"
    assert set(totals.values()) == {before + 20}, totals
    assert body["gateway"]["processes_reporting"] == 2
    assert body["gateway"]["routes"][route]["server_errors_total"] >= 20


def test_the_workers_end_with_the_supervisor_even_when_it_is_killed(gateway: dict[str, object]) -> None:
    process = gateway["process"]
    assert isinstance(process, subprocess.Popen)
    workers = _workers_of(process.pid)
    assert len(workers) == 2
    process.kill()
    process.wait(10)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its killed supervisor"
        time.sleep(0.1)
