"""``Upstream`` over real gRPC servers (each runs the stock health service and registers itself in a NATS
KV bucket of the test's own): balancing across instances, retries on another instance, the breaker,
ejection, deadlines, and self-registration by ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import nats
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.discovery import Instance
from sutazai_runtime.discovery.nats_kv import NatsKvRegistry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.resilience import BreakerPolicy, OutlierPolicy
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy, UpstreamUnavailable
from sutazai_runtime.settings import ServiceSettings


async def eventually(check, timeout_s: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``check()`` holds; fails after ``timeout_s``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_UPTEST_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)


class _Server:
    """A real grpc.aio server answering the stock health check, optionally slowly."""

    def __init__(self) -> None:
        self.calls = 0
        self.delay_s = 0.0
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        outer = self

        class Slow(health.aio.HealthServicer):
            async def Check(self, request, context):  # type: ignore[no-untyped-def]
                outer.calls += 1
                if outer.delay_s:
                    await asyncio.sleep(outer.delay_s)
                return await super().Check(request, context)

        self.server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(Slow(), self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)

    def instance(self, n: int) -> Instance:
        return Instance(id=f"h-{n}", name="h", address="127.0.0.1", port=self.port)


@pytest.fixture
async def servers() -> AsyncIterator[list[_Server]]:
    found = [_Server(), _Server()]
    for s in found:
        await s.start()
    yield found
    for s in found:
        await s.stop()


def upstream(servers: list[_Server], **policy: object) -> Upstream:
    up = Upstream("h", policy=UpstreamPolicy(**policy))  # type: ignore[arg-type]
    up.set_instances([s.instance(i) for i, s in enumerate(servers)])
    return up


REQ = health_pb2.HealthCheckRequest()


async def test_calls_spread_over_both_instances(servers: list[_Server]) -> None:
    for strategy in ("round_robin", "p2c_peak_ewma", "least_connections", "random", "weighted"):
        up = upstream(servers, strategy=strategy)
        before = [s.calls for s in servers]
        await asyncio.gather(*(up.stub(health_pb2_grpc.HealthStub).Check(REQ) for _ in range(60)))
        got = [s.calls - b for s, b in zip(servers, before, strict=True)]
        assert sum(got) == 60 and min(got) > 5, (strategy, got)
        assert up.in_flight == 0
        await up.close()


async def test_a_dead_instance_is_retried_elsewhere_then_ejected(servers: list[_Server]) -> None:
    up = upstream(servers, outlier=OutlierPolicy(consecutive_failures=3, base_ejection_s=30))
    await servers[1].stop()
    for _ in range(20):  # a steady load, four in flight; a burst larger than the retry budget would fail some
        results = await asyncio.gather(*(up.stub(health_pb2_grpc.HealthStub).Check(REQ, timeout=5) for _ in range(4)))
        assert all(r.status == health_pb2.HealthCheckResponse.SERVING for r in results)  # no caller saw an error
    assert up.breaker.state == "closed"
    await eventually(lambda: any(i["ejected"] for i in up.instances()) or up.budget.retries > 0)
    assert up.snapshot()["retries"] >= 1
    await up.close()


async def test_breaker_opens_answers_fast_and_one_probe_closes_it(servers: list[_Server]) -> None:
    only = servers[:1]
    up = upstream(only, breaker=BreakerPolicy(consecutive_failures=3, open_s=1.0))
    port = only[0].port
    await only[0].stop()
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await up.stub(health_pb2_grpc.HealthStub).Check(REQ, timeout=2)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert up.breaker.state == "open"
    started = time.perf_counter()
    for _ in range(50):
        with pytest.raises(UpstreamUnavailable) as refused:
            await up.stub(health_pb2_grpc.HealthStub).Check(REQ)
    per_call_ms = (time.perf_counter() - started) * 1000 / 50
    assert per_call_ms < 5
    assert refused.value.reason == "breaker_open" and "h" in refused.value.details()
    assert dict(refused.value.trailing_metadata())["retry-after"] == "1"
    await only[0].start(port)  # the upstream is back
    await asyncio.sleep(1.05)
    assert up.breaker.state == "half_open"
    await up.stub(health_pb2_grpc.HealthStub).Check(REQ, timeout=5)
    assert up.breaker.state == "closed"
    await up.close()


async def test_a_slow_upstream_hits_the_deadline_and_in_flight_returns_to_zero(servers: list[_Server]) -> None:
    up = upstream(servers[:1])
    servers[0].delay_s = 2.0
    calls = [asyncio.create_task(up.stub(health_pb2_grpc.HealthStub).Check(REQ, timeout=0.3)) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert up.in_flight == 5
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await call
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert up.in_flight == 0 and up.endpoints[0].in_flight == 0
    await up.close()


async def test_a_cancelled_call_is_no_verdict(servers: list[_Server]) -> None:
    up = upstream(servers[:1], breaker=BreakerPolicy(consecutive_failures=1))
    servers[0].delay_s = 1.0
    call = asyncio.create_task(up.stub(health_pb2_grpc.HealthStub).Check(REQ))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert up.breaker.state == "closed" and up.breaker.failed_requests == 0 and up.in_flight == 0
    await up.close()


async def test_streams_are_judged_and_balanced(servers: list[_Server]) -> None:
    up = upstream(servers[:1], breaker=BreakerPolicy(consecutive_failures=2, open_s=30))
    stream = up.stub(health_pb2_grpc.HealthStub).Watch(REQ, timeout=5)
    first = await stream.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING and up.in_flight == 1
    stream.cancel()  # the client left: no verdict
    assert up.in_flight == 0 and up.breaker.failed_requests == 0
    await servers[0].stop()
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await up.stub(health_pb2_grpc.HealthStub).Watch(REQ, timeout=2).read()
    assert up.breaker.state == "open"  # a stream that fails to start counts
    await up.close()


async def test_the_concurrency_cap(servers: list[_Server]) -> None:
    up = upstream(servers[:1], max_concurrent=2)
    servers[0].delay_s = 0.5
    calls = [asyncio.create_task(up.stub(health_pb2_grpc.HealthStub).Check(REQ)) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(UpstreamUnavailable) as over:
        await up.stub(health_pb2_grpc.HealthStub).Check(REQ)
    assert over.value.reason == "overflow"
    await asyncio.gather(*calls)
    await up.close()


async def test_no_instance_is_unavailable() -> None:
    up = Upstream("nothing")
    with pytest.raises(UpstreamUnavailable) as none:
        await up.stub(health_pb2_grpc.HealthStub).Check(REQ)
    assert none.value.reason == "no_instance"
    assert up.breaker.failed_requests == 1  # a service with no instance at all is failing
    await up.close()


async def _open_kv(nats_url: str, ttl_s: float) -> AsyncIterator[NatsKvRegistry]:
    bucket = f"test_registry_{uuid.uuid4().hex[:8]}"
    registry = NatsKvRegistry(await nats.connect(nats_url), bucket=bucket, ttl_s=ttl_s, owns_connection=True)
    await registry.start()
    yield registry
    await registry.close()
    nc = await nats.connect(nats_url)
    for stream in (f"KV_{bucket}", f"KV_{bucket}_external"):
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream)
    await nc.close()


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[NatsKvRegistry]:
    async for registry in _open_kv(nats_url, 2.0):
        yield registry


@pytest.fixture
async def kv_long(nats_url: str) -> AsyncIterator[NatsKvRegistry]:
    """The longest TTL (10 s): an entry gone within a few seconds was deleted, not left to expire."""
    async for registry in _open_kv(nats_url, 10.0):
        yield registry


async def test_serve_registers_passing_and_deregisters_on_stop(kv: NatsKvRegistry) -> None:
    stop = asyncio.Event()
    port: list[int] = []
    settings = _Settings(probe_interval_s=0.1, instance_id="uptest-1", zone="z1", weight=3, tags=["a"])
    spec = GrpcService(name="uptest", settings=settings, register=[], service_names=[], registry=kv)
    task = asyncio.create_task(serve(spec, stop=stop, bound_port=port))
    await eventually(lambda: len(kv.instances("uptest")) == 1)
    found = kv.instances("uptest")[0]
    assert (found.id, found.port, found.tags, found.metadata["zone"], found.weight) == ("uptest-1", port[0], ("a",),
                                                                                       "z1", 3)
    assert {"version", "metrics_port"} <= found.metadata.keys()
    up = Upstream("uptest", registry=kv)  # callers resolve it from the watch
    assert (await up.stub(health_pb2_grpc.HealthStub).Check(REQ)).status == health_pb2.HealthCheckResponse.SERVING
    stop.set()
    await task
    assert kv.instances("uptest", passing_only=False) == []
    assert up.endpoints == []
    await up.close()


@pytest.mark.skipif(sys.platform != "linux", reason="signals")
async def test_a_sigterm_deregisters(kv_long: NatsKvRegistry, nats_url: str) -> None:
    # The child is told which NATS to register with: without it, it used the standard port's server, and in
    # embedded mode (a NATS of the test session's own on a free port) the test never saw it register.
    code = (
        "import asyncio, uvloop\n"
        "from sutazai_runtime.grpc_server import GrpcService, serve\n"
        "from sutazai_runtime.settings import ServiceSettings\n"
        "class S(ServiceSettings):\n"
        "    grpc_port: int = 0\n"
        "    metrics_port: int = 0\n"
        f"s = S(instance_id='sig-1', discovery={{'bucket': '{kv_long.bucket}', 'ttl_s': 10.0,"
        f" 'nats_url': '{nats_url}'}})\n"
        "uvloop.run(serve(GrpcService(name='sigtest', settings=s, register=[], service_names=[])))\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    try:
        await eventually(lambda: len(kv_long.instances("sigtest")) == 1, timeout_s=60)
        process.send_signal(signal.SIGTERM)
        # gone within 5 s: its last heartbeat was at most 3.3 s ago, so expiry would take 6.7 s or more
        await eventually(lambda: not kv_long.instances("sigtest", passing_only=False), timeout_s=5)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()


async def test_a_served_call_passes_its_remaining_deadline_on(servers: list[_Server]) -> None:
    """A front service (its handlers wrapped by ``ObservedServer``, as ``serve`` does) calls an upstream
    within its handler: the upstream sees the caller's deadline, not the client layer's default of 10 s."""
    from sutazai_runtime.grpc_observe import ObservedServer

    inner = upstream(servers[:1])  # policy timeout: 10 s
    seen: list[float | None] = []

    class Back(health.aio.HealthServicer):
        async def Check(self, request, context):  # type: ignore[no-untyped-def]
            seen.append(context.time_remaining())
            return await super().Check(request, context)

    class Front(health.aio.HealthServicer):
        async def Check(self, request, context):  # type: ignore[no-untyped-def]
            return await inner.stub(health_pb2_grpc.HealthStub).Check(request)

    back = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Back(), back)
    back_port = back.add_insecure_port("127.0.0.1:0")
    await back.start()
    inner.set_instances([Instance(id="back", name="h", address="127.0.0.1", port=back_port)])
    front = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Front(), ObservedServer(front))  # type: ignore[arg-type]
    port = front.add_insecure_port("127.0.0.1:0")
    await front.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await health_pb2_grpc.HealthStub(channel).Check(REQ, timeout=3.0)
            # passed on: about 3 s (grpc-timeout is rounded up on the wire, and the server adds its own slack);
            # the layer's own 10 s without it
            assert seen[-1] is not None and seen[-1] < 5.0
            await health_pb2_grpc.HealthStub(channel).Check(REQ)  # no deadline in: the layer's own
            assert seen[-1] is not None and 5.0 < seen[-1] <= 11.0
    finally:
        await front.stop(None)
        await back.stop(None)
        await inner.close()


async def test_a_failed_health_check_ejects_and_a_passing_one_returns_it(servers: list[_Server]) -> None:
    up = upstream(servers)
    up.health_checked("h-1", False, "DEADLINE_EXCEEDED")
    assert [i["id"] for i in up.instances() if i["ejected"]] == ["h-1"]
    assert up.snapshot()["ejected_instances"] == ["h-1"]
    for _ in range(10):
        await up.stub(health_pb2_grpc.HealthStub).Check(REQ)
    assert servers[1].calls == 0  # out of rotation
    up.health_checked("h-0", False, "x")  # never the last one
    assert up.snapshot()["ejected_instances"] == ["h-1"]
    up.health_checked("h-1", True)
    assert up.snapshot()["ejected_instances"] == []
    await up.close()
