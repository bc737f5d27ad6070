"""``python -m sutazai_mesh``: wiring only."""

import uvloop
from sutazai.mesh.v1 import mesh_pb2_grpc
from sutazai_runtime.discovery import open_registry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.nats import connect_nats
from sutazai_runtime.probes import nats_probe
from sutazai_runtime.resilience.guards import upstream_guard
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy
from sutazai_runtime.startup import connect_with_retry
from sutazai_runtime.telemetry import configure_tracing

from sutazai_mesh.catalog import Catalog
from sutazai_mesh.config import Settings
from sutazai_mesh.server import SERVICE, MeshServicer


async def run(settings: Settings) -> None:
    nc = await connect_with_retry(
        "nats", lambda: connect_nats(settings.nats_url, name="sutazai-mesh"), timeout_s=settings.startup_timeout_s
    )
    registry = await connect_with_retry(
        "registry", lambda: open_registry(settings.discovery, client_name="sutazai-mesh",
                                          static_addresses={"tasks": settings.tasks_addr}),
        timeout_s=settings.startup_timeout_s,
    )
    catalog = Catalog(registry)
    tasks = Upstream("tasks", registry=registry, policy=UpstreamPolicy(timeout_s=5.0))
    servicer = MeshServicer(catalog, tasks)
    await serve(
        GrpcService(
            name="mesh",
            settings=settings,
            register=[lambda server: mesh_pb2_grpc.add_MeshServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[nats_probe(nc, settings.nats_url)],
            cleanups=[tasks.close, registry.close, nc.drain],
            background=[lambda: catalog.watch_external(settings.external_check_interval_s,
                                                       settings.external_check_timeout_s)],
            registry=registry,
            guards=[upstream_guard(tasks)],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "mesh")
    configure_tracing("mesh", settings.telemetry)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
