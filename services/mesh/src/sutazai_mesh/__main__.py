"""``python -m sutazai_mesh``: wiring only."""

import uvloop
from nats.js.api import KeyValueConfig, StorageType
from sutazai.mesh.v1 import mesh_pb2_grpc
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.nats import connect_nats
from sutazai_runtime.probes import nats_probe
from sutazai_runtime.startup import connect_with_retry

from sutazai_mesh.config import Settings
from sutazai_mesh.server import SERVICE, MeshServicer


async def run(settings: Settings) -> None:
    nc = await connect_with_retry(
        "nats", lambda: connect_nats(settings.nats_url, name="sutazai-mesh"), timeout_s=settings.startup_timeout_s
    )
    # The registry bucket: one key per instance, expiring unless the instance renews it.
    js = nc.jetstream(timeout=5.0)
    await js.create_key_value(
        KeyValueConfig(bucket=settings.registry_bucket, ttl=settings.registry_ttl_s, storage=StorageType.FILE)
    )
    servicer = MeshServicer()
    await serve(
        GrpcService(
            name="mesh",
            settings=settings,
            register=[lambda server: mesh_pb2_grpc.add_MeshServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[nats_probe(nc, settings.nats_url)],
            cleanups=[nc.drain],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "mesh")
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
