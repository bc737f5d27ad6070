"""``python -m sutazai_memory``: wiring only."""

import uvloop
from sutazai.memory.v1 import memory_pb2_grpc
from sutazai_runtime.discovery import open_registry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.postgres import create_pool
from sutazai_runtime.probes import postgres_probe
from sutazai_runtime.startup import connect_with_retry

from sutazai_memory.config import Settings
from sutazai_memory.memory_store import init_connection
from sutazai_memory.server import SERVICE
from sutazai_memory.wiring import build, migrate

MAX_REQUEST_BYTES = 16 * 1024 * 1024  # a 10 MiB document and its fields


async def run(settings: Settings) -> None:
    pool = await connect_with_retry(
        "postgres", lambda: create_pool(settings.database_url, init=init_connection),
        timeout_s=settings.startup_timeout_s,
    )
    await migrate(pool)
    registry = await connect_with_retry(
        "registry", lambda: open_registry(settings.discovery, client_name="sutazai-memory",
                                          static_addresses={"chat": settings.chat_addr}),
        timeout_s=settings.startup_timeout_s,
    )
    # chat's instances from the registry's watch, balanced and protected per call
    built = await build(settings, pool, registry=registry)
    await serve(
        GrpcService(
            name="memory",
            settings=settings,
            register=[lambda server: memory_pb2_grpc.add_MemoryServiceServicer_to_server(built.servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url), *built.probes],
            cleanups=[*built.cleanups, pool.close, registry.close],
            registry=registry,
            max_receive_bytes=MAX_REQUEST_BYTES,
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "memory")
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
