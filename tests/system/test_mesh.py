"""Several instances behind the gateway, on a stack started like ``SUTAZAI_REPLICAS=agents=2,chat=2 make run``:
discovery, balancing, and what happens when an instance dies, freezes or an upstream goes away entirely.
Tests run in file order: each fault comes after the checks that need every instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system
log = logging.getLogger(__name__)

TTL_S = 6.0  # the registry's default entry TTL (SUTAZAI_DISCOVERY_TTL_S)
AGENT = "/api/v1/agents/summarizer"
PAYLOAD = {"invoice": 7, "big": 12345678901234567891, "f": 1.0}  # delivered as sent: JSON text end to end


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("mesh"), stack_servers, SUTAZAI_REPLICAS="agents=2,chat=2",
                   SUTAZAI_GATEWAY_BREAKER_RECOVERY_S="5", SUTAZAI_GATEWAY_UPSTREAM_TIMEOUT_S="3",
                   SUTAZAI_GATEWAY_PER_TRY_TIMEOUT_S="1",
                   # every read crosses the hop: the API cache would answer repeated reads itself
                   SUTAZAI_GATEWAY_API_CACHE_TTL_S="0") as running:
        yield running


def services(stack: RunningStack) -> list[dict]:  # type: ignore[type-arg]
    response = httpx.get(stack.url + "/api/v1/mesh/v2/services", headers=stack.admin_headers, timeout=10)
    response.raise_for_status()
    return response.json()["services"]  # type: ignore[no-any-return]


def breakers(stack: RunningStack) -> dict:  # type: ignore[type-arg]
    response = httpx.get(stack.url + "/api/v1/health/circuit-breakers", headers=stack.admin_headers, timeout=10)
    return response.json()["circuit_breakers"]  # type: ignore[no-any-return]


def calls_by_instance(stack: RunningStack, upstream: str, outcome: str = "ok") -> dict[str, float]:
    """The gateway's per-instance call counters (Prometheus)."""
    port = stack.state["services"]["gateway"]["metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    pattern = re.compile(
        rf'sutazai_upstream_calls_total\{{instance="([^"]+)",outcome="{outcome}",upstream="{upstream}"\}} ([0-9.e+]+)'
    )
    return {m.group(1): float(m.group(2)) for m in pattern.finditer(text)}


def served_by(stack: RunningStack, instance: str, method: str = "GetAgent") -> float:
    """Calls the instance itself counted as served (its own Prometheus metrics)."""
    port = stack.state["services"][instance]["metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    # every status code's count of the method (sutazai_runtime.grpc_observe)
    found = re.findall(rf'sutazai_grpc_server_handled_total\{{[^}}]*grpc_method="{method}"[^}}]*\}} ([0-9.e+]+)', text)
    return sum(float(n) for n in found)


def transitions(stack: RunningStack, breaker: str, old: str, new: str) -> float:
    port = stack.state["services"]["gateway"]["metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(rf'sutazai_breaker_transitions_total\{{breaker="{breaker}",from_state="{old}",'
                      rf'to_state="{new}"\}} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0


def ejections(stack: RunningStack, upstream: str, instance: str) -> float:
    port = stack.state["services"]["gateway"]["metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(rf'sutazai_outlier_ejections_total\{{instance="{instance}",upstream="{upstream}"\}} ([0-9.e+]+)',
                      text)
    return float(found.group(1)) if found else 0.0


async def steady_load(stack: RunningStack, seconds: float, *, concurrency: int = 4, path: str = AGENT,
                      at: float | None = None, action=None) -> list[tuple[float, int, float]]:  # type: ignore[no-untyped-def]
    """GET the agent from ``concurrency`` loops for ``seconds``; ``action()`` runs ``at`` seconds in.
    Returns (seconds since start, status, latency) per request; status 0 is a transport error."""
    results: list[tuple[float, int, float]] = []
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=stack.url, headers=stack.admin_headers, timeout=10) as client:
        async def loop() -> None:
            while (now := time.monotonic()) - start < seconds:
                try:
                    status = (await client.get(path)).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((now - start, status, time.monotonic() - now))

        async def trigger() -> None:
            if action is not None and at is not None:
                await asyncio.sleep(at)
                action()

        await asyncio.gather(trigger(), *(loop() for _ in range(concurrency)))
    return results


def test_two_passing_instances_of_each_and_both_get_traffic(stack: RunningStack) -> None:
    def four_passing() -> list[dict] | None:  # type: ignore[type-arg]
        found = services(stack)
        passing = [i for i in found if i["name"] in ("agents", "chat") and i["state"] == "healthy"]
        return found if len(passing) == 4 else None

    listed = wait_until(four_passing, 30)
    assert listed, services(stack)
    for item in listed:
        assert {"id", "name", "address", "port", "tags", "metadata", "state"} <= set(item)
        assert {"version", "zone", "weight", "metrics_port"} <= set(item["metadata"])
    ports = {i["port"] for i in listed if i["name"] == "agents"}
    assert len(ports) == 2
    served = {name: served_by(stack, name) for name in ("agents", "agents-2")}
    asyncio.run(steady_load(stack, 3.0))
    counts = calls_by_instance(stack, "agents")
    assert {"agents-1", "agents-2"} <= {k for k, v in counts.items() if v > 0}, counts
    # and each instance's own metrics say it served some of them
    assert all(served_by(stack, name) > before for name, before in served.items()), served
    # the same for chat's two instances (a call that asks no model: the models they serve)
    listed_models = {name: served_by(stack, name, "ListModels") for name in ("chat", "chat-2")}
    results = asyncio.run(steady_load(stack, 2.0, path="/api/v1/models"))
    assert {r[1] for r in results} == {200}
    assert all(served_by(stack, name, "ListModels") > before for name, before in listed_models.items()), listed_models
    health = stack.detailed_health()
    assert {i["id"] for i in health["services"]["agents"]["instances"]} == {"agents-1", "agents-2"}
    mesh = httpx.get(stack.url + "/api/v1/mesh/v2/health", headers=stack.admin_headers, timeout=10).json()
    assert mesh["services"]["agents"]["total"] == 2 and mesh["services"]["agents"]["healthy"] == 2
    assert httpx.get(stack.url + "/").json()["features"]["mesh"] is True


class _External:
    """A real HTTP service outside the platform (the original's mesh clients): POST /process, GET /health."""

    def __init__(self) -> None:
        self.received: list[dict] = []  # type: ignore[type-arg]
        self.fail_first = 1
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        async def process(request: web.Request) -> web.Response:
            body = await request.json()
            if self.fail_first > 0:  # the first delivery fails: the task is retried with back-off
                self.fail_first -= 1
                return web.json_response({"error": "busy"}, status=503)
            self.received.append(body)
            return web.json_response({"echo": body["payload"], "handled_by": "external"}, status=200)

        async def health(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/process", process)
            app.router.add_get("/health", health)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            await asyncio.Event().wait()

        self._loop = asyncio.new_event_loop()
        with contextlib.suppress(RuntimeError):
            self._loop.run_until_complete(main())

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)


def test_external_service_register_enqueue_deliver_and_remove(stack: RunningStack) -> None:
    external = _External()
    external.start()
    headers = stack.admin_headers
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as client:
        assert client.post("/api/v1/mesh/v2/register", json={"service_name": "x"}).status_code == 422
        assert client.post("/api/v1/mesh/v2/register", json={"service_id": "bad id"}).status_code == 422
        assert client.post("/api/v1/mesh/v2/register", json={"service_id": "agents-1"}).status_code == 409
        assert httpx.post(stack.url + "/api/v1/mesh/v2/register", json={"service_id": "e"}).status_code == 401
        registered = client.post("/api/v1/mesh/v2/register", json={
            "service_id": "billing-1", "service_name": "billing", "address": "127.0.0.1", "port": external.port,
            "tags": ["external"], "metadata": {"team": "b"}})
        assert registered.status_code == 200, registered.text
        body = registered.json()
        assert body["status"] == "registered" and body["service"]["instance"]["service_id"] == "billing-1"
        assert set(body["service"]["instance"]["check"]) == {"http", "interval", "timeout",
                                                             "deregister_critical_service_after"}
        listed = wait_until(lambda: next((i for i in services(stack) if i["id"] == "billing-1"
                                          and i["state"] == "healthy"), None), 30)
        assert listed and listed["metadata"]["team"] == "b", services(stack)

        assert client.post("/api/v1/mesh/v2/enqueue", json={"task_type": "nope", "payload": {}}).status_code == 404
        queued = client.post("/api/v1/mesh/v2/enqueue",
                             json={"task_type": "billing", "payload": PAYLOAD, "priority": 5})
        assert queued.status_code == 202, queued.text
        task_id = queued.json()["task_id"]
        done = wait_until(lambda: (t := client.get(f"/api/v1/mesh/v2/task/{task_id}").json())["status"]
                          == "completed" and t, 60, interval_s=0.5)
        assert done, client.get(f"/api/v1/mesh/v2/task/{task_id}").json()
        result = done["result"]
        assert result["status_code"] == 200 and result["instance_id"] == "billing-1"
        assert result["body"] == {"echo": PAYLOAD, "handled_by": "external"}
        assert isinstance(result["body"]["echo"]["f"], float)  # 1.0 stays 1.0, the big integer exact
        assert result["trace_id"] and result["duration"] > 0
        assert external.received == [{"task_id": task_id, "payload": PAYLOAD, "priority": 5}]
        assert isinstance(external.received[0]["payload"]["f"], float)
        assert client.get(f"/api/v1/mesh/v2/task/{uuid.uuid4()}").status_code == 404
        assert client.get("/api/v1/mesh/v2/task/not-a-uuid").status_code == 400

        assert client.delete("/api/v1/mesh/v2/services/agents-1").status_code == 409
        assert client.delete("/api/v1/mesh/v2/services/billing-1").status_code == 200
        assert client.delete("/api/v1/mesh/v2/services/billing-1").status_code == 404
        assert "billing-1" not in {i["id"] for i in services(stack)}
        status = client.get("/api/v1/mesh/status").json()
        assert {"status", "services_count", "services", "queue_stats", "timestamp"} <= set(status)


def test_a_frozen_instance_is_ejected_reads_keep_succeeding_and_it_serves_again(stack: RunningStack) -> None:
    """SIGSTOP: the process keeps its port and connections but answers nothing. The gateway's health round
    (every 2 s, each check bounded by 1 s) fails on it and the outlier detector ejects it, before the registry
    could drop it (its heartbeat stopped too, so it leaves the registry after its TTL); the calls that were
    stuck on it are retried on the other instance after the per-try timeout. After SIGCONT it serves again."""
    pid = stack.pid("agents-2")
    ejected_before = ejections(stack, "agents", "agents-2")
    ejected_at: list[float] = []
    stopped_at: list[float] = []

    async def load_and_watch() -> list[tuple[float, int, float]]:
        frozen = asyncio.Event()

        def freeze() -> None:
            stopped_at.append(time.monotonic())
            os.kill(pid, signal.SIGSTOP)
            frozen.set()

        async def watch() -> None:
            await frozen.wait()
            async with httpx.AsyncClient(base_url=stack.url, headers=stack.admin_headers, timeout=10) as client:
                while time.monotonic() - stopped_at[0] < TTL_S:
                    state = (await client.get("/api/v1/health/circuit-breakers")).json()["circuit_breakers"]
                    if "agents-2" in state["agents"]["ejected_instances"]:
                        ejected_at.append(time.monotonic())
                        return
                    await asyncio.sleep(0.1)

        results, _ = await asyncio.gather(steady_load(stack, 8.0, at=1.0, action=freeze), watch())
        return results

    try:
        results = asyncio.run(load_and_watch())
    except BaseException:
        os.kill(pid, signal.SIGCONT)
        raise
    try:
        bad = [r for r in results if r[1] != 200]
        assert not bad, bad[:5]  # every read succeeded (one stuck on the frozen instance is retried elsewhere)
        # ejected by the gateway while the registry still listed it as passing (within the TTL of the freeze)
        assert ejected_at, breakers(stack)["agents"]
        assert ejections(stack, "agents", "agents-2") == ejected_before + 1
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: any(i["id"] == "agents-2" and i["state"] == "healthy" for i in services(stack)), 15)
    assert wait_until(lambda: "agents-2" not in breakers(stack)["agents"]["ejected_instances"], 15)
    served = served_by(stack, "agents-2")
    asyncio.run(steady_load(stack, 3.0))
    assert served_by(stack, "agents-2") > served, "agents-2 served nothing after SIGCONT"


def test_sigkill_of_an_instance_under_load(stack: RunningStack) -> None:
    pid = stack.pid("agents-2")
    killed_at: list[float] = []

    def kill() -> None:
        killed_at.append(time.monotonic())
        os.kill(pid, signal.SIGKILL)

    start = time.monotonic()
    results = asyncio.run(steady_load(stack, 4.0, at=1.0, action=kill))
    kill_t = killed_at[0] - start
    errors_after = [r for r in results if r[0] > kill_t + 1.0 and r[1] != 200]
    assert not errors_after, errors_after[:5]
    assert sum(1 for r in results if r[0] > kill_t + 1.0) > 10
    # Its entry expires one TTL after its last heartbeat (sent before the kill); each process's view checks
    # expiry every second: gone from the mesh's listing within TTL + 1 s of the kill.
    waited = wait_until(lambda: "agents-2" not in {i["id"] for i in services(stack)}, 1.0 + TTL_S - (
        time.monotonic() - killed_at[0]), interval_s=0.2)
    assert waited, services(stack)


def _restart(environ: dict[str, str], name: str, home: Path) -> subprocess.Popen[bytes]:
    with open(home / f"{name}-restarted.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", f"sutazai_{name}"], env=environ, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_upstream_down_opens_the_breaker_then_one_probe_closes_it(stack: RunningStack, tmp_path: Path) -> None:
    process = psutil.Process(stack.pid("agents"))
    environ = process.environ()
    process.kill()
    process.wait(10)
    statuses = []
    for _ in range(10):  # within the registry TTL the dead instance is still listed: its calls fail
        statuses.append(httpx.get(stack.url + AGENT, headers=stack.admin_headers, timeout=10).status_code)
    assert set(statuses) == {503}, statuses
    state = breakers(stack)["agents"]
    assert state["state"] == "open", state
    assert state["next_probe_time"] is not None and state["window_failure_rate"] > 0
    # While open, a call is refused before it leaves: no network, the problem names the upstream and the breaker.
    # (How fast: bench/mesh_hop.py measures the open breaker's 503 against a no-hop route; no timing here.)
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=10) as client:
        for _ in range(50):
            response = client.get(AGENT)
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
            assert response.headers["content-type"].startswith("application/problem+json")
            assert "circuit breaker for agents is open" in response.json()["detail"]
    assert breakers(stack)["agents"]["rejected_requests"] == state["rejected_requests"] + 50
    closed_before = transitions(stack, "agents", "half_open", "closed")
    restarted = _restart(environ, "agents", tmp_path)
    try:
        ok = wait_until(lambda: httpx.get(stack.url + AGENT, headers=stack.admin_headers, timeout=10)
                        .status_code == 200, 60, interval_s=0.5)
        assert ok
        state = breakers(stack)["agents"]
        assert state["state"] == "closed", state
        # closed by one successful half-open probe (probes that failed while it started reopened it)
        assert transitions(stack, "agents", "half_open", "closed") == closed_before + 1
        assert state["half_open_probes"] == 1

        # A slow upstream (frozen, still registered) hits the deadline; in flight goes back to zero.
        os.kill(restarted.pid, signal.SIGSTOP)
        try:
            async def slow() -> list[int]:
                async with httpx.AsyncClient(base_url=stack.url, headers=stack.admin_headers, timeout=20) as c:
                    return [r.status_code for r in await asyncio.gather(*(c.get(AGENT) for _ in range(5)))]

            started = time.monotonic()
            got = asyncio.run(slow())
            assert set(got) <= {503, 504} and time.monotonic() - started < 8, got
            assert breakers(stack)["agents"]["in_flight"] == 0
        finally:
            os.kill(restarted.pid, signal.SIGCONT)
    finally:
        restarted.terminate()
        restarted.wait(15)
    reset = httpx.post(stack.url + "/api/v1/health/circuit-breakers/reset", params={"name": "agents"},
                       headers=stack.admin_headers, timeout=10)
    assert reset.status_code == 200 and reset.json()["status"] == "success"
    unknown = httpx.post(stack.url + "/api/v1/health/circuit-breakers/reset", params={"name": "nope"},
                         headers=stack.admin_headers, timeout=10)
    assert unknown.status_code == 404
