"""Where /api/v1/performance/metrics gets services' numbers: ``Diagnostics.GetMetrics`` on every instance, in
parallel and bounded. An instance that answers gives its metric families; one that does not (no Diagnostics,
or nobody listening) is reported as an error, and the others are still summed."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai_gateway.performance import service_snapshots
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.resilience.upstream import Upstream
from sutazai_runtime.settings import ServiceSettings


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_PERFTEST_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)
    register_instance: bool = False


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_answering_silent_and_absent_instances() -> None:
    stop, port = asyncio.Event(), []
    served = asyncio.create_task(serve(GrpcService(name="perftest", settings=_Settings(probe_interval_s=5),
                                                   register=[], service_names=[]), stop=stop, bound_port=port))
    bare = grpc.aio.server()  # answers health only: no Diagnostics
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), bare)
    bare_port = bare.add_insecure_port("127.0.0.1:0")
    await bare.start()
    while not port:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    absent_port = _unused_port()
    upstream = Upstream("perftest", targets=[f"127.0.0.1:{p}" for p in (port[0], bare_port, absent_port)])
    try:
        started = time.monotonic()
        found = (await service_snapshots([upstream], timeout_s=1.0))["perftest"]  # type: ignore[list-item]
        elapsed = time.monotonic() - started
    finally:
        await upstream.close()
        await bare.stop(None)
        stop.set()
        await asyncio.wait_for(served, 10)
    answered, no_diagnostics, absent = (found[f"perftest@127.0.0.1:{p}"] for p in (port[0], bare_port, absent_port))
    assert isinstance(answered, list) and any(f.name == "sutazai_grpc_server_in_flight" for f in answered)
    assert isinstance(no_diagnostics, str) and no_diagnostics.startswith("UNIMPLEMENTED")
    assert isinstance(absent, str) and absent.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED"))
    assert elapsed < 5  # bounded by the timeout (1 s), not by the absent instance's connection attempts
