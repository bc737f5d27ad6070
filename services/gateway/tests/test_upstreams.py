"""The gateway's upstreams (sutazai_runtime Upstream per service) on real gRPC channels to a real server."""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_gateway.config import Settings
from sutazai_gateway.upstreams import Upstreams
from sutazai_runtime.discovery.static import StaticRegistry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.resilience.upstream import DOMAIN_ERROR_KEY
from sutazai_runtime.settings import ServiceSettings

MESH = mesh_pb2.DESCRIPTOR.services_by_name["MeshService"]


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_BREAKERTEST_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)


class _Mesh(mesh_pb2_grpc.MeshServiceServicer):
    async def ListServices(self, request, context):  # type: ignore[no-untyped-def]
        # The service's own domain error, tagged: it is answering, just saying no.
        await context.abort(grpc.StatusCode.UNAVAILABLE, "no backend", trailing_metadata=((DOMAIN_ERROR_KEY, "x"),))

    async def Resolve(self, request, context):  # type: ignore[no-untyped-def]
        await context.abort(grpc.StatusCode.UNAVAILABLE, "broken")


async def test_tagged_errors_do_not_open_it_untagged_ones_do_and_health_bypasses_it() -> None:
    stop, port = asyncio.Event(), []
    spec = GrpcService(name="t", settings=_Settings(probe_interval_s=0.05), service_names=[MESH.full_name],
                       register=[lambda s: mesh_pb2_grpc.add_MeshServiceServicer_to_server(_Mesh(), s)])
    server = asyncio.create_task(serve(spec, stop=stop, bound_port=port))
    while not port:  # noqa: ASYNC110 - serve() reports its port through the list
        await asyncio.sleep(0.01)
    upstreams = await _upstreams({"mesh": f"127.0.0.1:{port[0]}"}, upstream_timeout_s=5, breaker_failures=2,
                                 breaker_recovery_s=60)
    upstream = upstreams["mesh"]
    breaker = upstream.breaker
    stub = upstream.stub(mesh_pb2_grpc.MeshServiceStub)
    assert upstream.stub(mesh_pb2_grpc.MeshServiceStub) is stub  # made once, reused by every request
    try:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.ListServices(mesh_pb2.ListServicesRequest())
        assert breaker.state == "closed"
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError, match="broken"):
                await stub.Resolve(mesh_pb2.ResolveRequest(name="x"))
        assert breaker.state == "open"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Resolve(mesh_pb2.ResolveRequest(name="x"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "circuit breaker for mesh is open" in (refused.value.details() or "")
        assert dict(refused.value.trailing_metadata())["retry-after"] == "60"
        assert breaker.snapshot()["rejected_requests"] == 1
        # The health stub bypasses the breaker, so the monitor keeps seeing the real service.
        [(_, health_stub)] = upstream.plain_stubs(health_pb2_grpc.HealthStub)
        for _ in range(100):  # the server turns SERVING after its first round of probes
            health = await health_stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            if health.status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.05)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        breaker.reset()
        with pytest.raises(grpc.aio.AioRpcError, match="broken"):
            await stub.Resolve(mesh_pb2.ResolveRequest(name="x"))  # closed again: the call goes out
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
        await upstreams.close()


async def _upstreams(addresses: dict[str, str], **settings: object) -> Upstreams:
    registry = StaticRegistry(addresses)
    await registry.start()
    config = Settings(jwt_secret="k3y-f0r-the-upstream-tests-0123456789abcdef", **settings)  # type: ignore[arg-type]
    return Upstreams(list(addresses), registry, config)


async def test_calls_get_the_default_deadline_and_an_open_breaker_refuses_streams() -> None:
    """Nothing listens on port 9: with wait_for_ready the call waits until the upstream's default deadline."""
    upstreams = await _upstreams({"tasks": "127.0.0.1:9"}, upstream_timeout_s=0.3, breaker_failures=1,
                                 breaker_recovery_s=60)
    upstream = upstreams["tasks"]
    stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as waited:
            await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="x"), wait_for_ready=True)
        assert waited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert loop.time() - started < 5
        assert upstream.breaker.state == "open"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.WatchTask(tasks_pb2.WatchTaskRequest(task_id="x")).read()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert dict(refused.value.trailing_metadata())["retry-after"] == "60"
        assert upstream.snapshot()["in_flight"] == 0
    finally:
        await upstreams.close()
