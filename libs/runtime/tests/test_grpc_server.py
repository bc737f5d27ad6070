"""The shared gRPC bootstrap, served for real on a free port."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai.common.v1 import common_pb2, common_pb2_grpc
from sutazai.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from sutazai_runtime.grpc_client import open_channel
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.identity.testing import metadata as signed_metadata
from sutazai_runtime.probes import Probe
from sutazai_runtime.resilience import BreakerPolicy, CircuitBreaker
from sutazai_runtime.resilience.guards import Guard, breaker_guard
from sutazai_runtime.settings import ServiceSettings
from sutazai_runtime.unimplemented import placeholder_servicer

MESH = mesh_pb2.DESCRIPTOR.services_by_name["MeshService"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_TEST_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)


class _SlowMesh(placeholder_servicer(mesh_pb2_grpc.MeshServiceServicer, MESH, "a test")):  # type: ignore[misc]
    """Deregister takes a while, standing in for any in-flight call during shutdown."""

    begun = 0  # Deregister calls that reached a servicer, so a test can wait for one to be in flight

    async def Deregister(self, request: mesh_pb2.DeregisterRequest, context: object) -> mesh_pb2.DeregisterResponse:
        type(self).begun += 1
        await asyncio.sleep(1.0)  # the work in flight
        return mesh_pb2.DeregisterResponse(deregistered=True)


class _Dependency:
    def __init__(self) -> None:
        self.up = True

    async def check(self) -> None:
        if not self.up:
            raise ConnectionError("down for the test")


@contextlib.asynccontextmanager
async def _running(
    dependency: _Dependency, grace_s: float = 3.0, guards: tuple[Guard, ...] = ()
) -> AsyncIterator[tuple[grpc.aio.Channel, asyncio.Event, asyncio.Task[None]]]:
    stop = asyncio.Event()
    port: list[int] = []
    settings = _Settings(probe_interval_s=0.05, probe_timeout_s=0.5, shutdown_grace_s=grace_s)
    servicer = _SlowMesh()
    spec = GrpcService(
        name="test",
        settings=settings,
        register=[lambda s: mesh_pb2_grpc.add_MeshServiceServicer_to_server(servicer, s)],
        service_names=[MESH.full_name],
        probes=[Probe("thing", "thing:1", dependency.check)],
        guards=guards,
    )
    task = asyncio.create_task(serve(spec, stop=stop, bound_port=port))
    while not port:  # noqa: ASYNC110 - serve() reports its port through the list
        await asyncio.sleep(0.01)
    channel = open_channel(f"127.0.0.1:{port[0]}", default_timeout_s=5)
    try:
        yield channel, stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await channel.close()


async def _health(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return reply.status


async def _wait_for_status(channel: grpc.aio.Channel, status: int) -> None:
    async with asyncio.timeout(3):
        while await _health(channel) != status:  # noqa: ASYNC110 - polling the server is the point
            await asyncio.sleep(0.02)


async def test_health_follows_the_dependencies() -> None:
    dependency = _Dependency()
    async with _running(dependency) as (channel, _, _):
        await _wait_for_status(channel, SERVING)
        assert await _health(channel, MESH.full_name) == SERVING
        dependency.up = False
        await _wait_for_status(channel, NOT_SERVING)
        diag = await common_pb2_grpc.DiagnosticsStub(channel).GetDependencies(common_pb2.GetDependenciesRequest())
        assert diag.service == "test"
        assert [(d.name, d.healthy, d.error) for d in diag.dependencies] == [
            ("thing", False, "ConnectionError: down for the test")
        ]
        dependency.up = True
        await _wait_for_status(channel, SERVING)


async def test_unimplemented_methods_say_which_issue_brings_them() -> None:
    async with _running(_Dependency()) as (channel, _, _):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mesh_pb2_grpc.MeshServiceStub(channel).ListServices(mesh_pb2.ListServicesRequest())
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "ListServices is not implemented yet (a test)" in (caught.value.details() or "")


async def test_reflection_lists_the_services() -> None:
    async with _running(_Dependency()) as (channel, _, _):
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {MESH.full_name, "grpc.health.v1.Health", "sutazai.common.v1.Diagnostics"} <= names


async def test_stopping_lets_in_flight_calls_finish_and_refuses_new_ones() -> None:
    async with _running(_Dependency()) as (channel, stop, task):
        stub = mesh_pb2_grpc.MeshServiceStub(channel)
        begun = _SlowMesh.begun
        in_flight = asyncio.ensure_future(stub.Deregister(mesh_pb2.DeregisterRequest(id="x")))
        async with asyncio.timeout(5):
            while _SlowMesh.begun == begun:  # noqa: ASYNC110 - the servicer counts the calls it began
                await asyncio.sleep(0.01)
        stop.set()
        reply = await in_flight
        assert reply.deregistered  # the call begun before the stop completed
        await asyncio.wait_for(task, 5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Deregister(mesh_pb2.DeregisterRequest(id="y"), timeout=1)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # refused at once, not left to time out


async def test_client_calls_get_a_default_deadline() -> None:
    async with _running(_Dependency()) as (_, _, _):
        pass
    # A channel to a port nothing listens on: wait_for_ready would hang forever without a deadline.
    channel = open_channel("127.0.0.1:9", default_timeout_s=0.3)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), wait_for_ready=True)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await channel.close()


async def test_diagnostics_shows_and_resets_the_breakers_to_admins_only() -> None:
    breaker = CircuitBreaker("chat-backend:local", BreakerPolicy(consecutive_failures=1))
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state == "open"
    admin = signed_metadata("root", admin=True)
    user = signed_metadata("someone")
    async with _running(_Dependency(), guards=(breaker_guard(breaker, lambda: 2),)) as (channel, _, _):
        diagnostics = common_pb2_grpc.DiagnosticsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await diagnostics.GetBreakers(common_pb2.GetBreakersRequest(), metadata=user)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        reply = await diagnostics.GetBreakers(common_pb2.GetBreakersRequest(), metadata=admin)
        [shown] = reply.breakers
        snapshot = json.loads(shown.snapshot_json)
        assert (shown.name, shown.kind, snapshot["state"], snapshot["in_flight"], snapshot["ejected_instances"]) == (
            "chat-backend:local", "backend", "open", 2, [])
        assert {"failure_threshold", "recovery_timeout", "rejected_requests", "window_failure_rate",
                "next_probe_time"} <= set(snapshot) and snapshot["next_probe_time"]
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await diagnostics.ResetBreakers(common_pb2.ResetBreakersRequest(name="nope"), metadata=admin)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and breaker.state == "open"
        with pytest.raises(grpc.aio.AioRpcError):
            await diagnostics.ResetBreakers(common_pb2.ResetBreakersRequest(), metadata=user)
        assert breaker.state == "open"
        reset = await diagnostics.ResetBreakers(common_pb2.ResetBreakersRequest(name="chat-backend:local"),
                                                metadata=admin)
        assert list(reset.reset) == ["chat-backend:local"] and breaker.state == "closed"
