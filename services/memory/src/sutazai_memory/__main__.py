"""``python -m sutazai_memory``: wiring only."""

import uvloop
from sutazai.memory.v1 import memory_pb2_grpc
from sutazai_runtime.discovery.settings import open_registry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.postgres import create_pool
from sutazai_runtime.probes import postgres_probe
from sutazai_runtime.resilience.guards import upstream_guard
from sutazai_runtime.resilience.upstream import Upstream
from sutazai_runtime.startup import connect_with_retry
from sutazai_runtime.telemetry import configure_tracing

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
    built = await build(settings, pool, registry=registry)  # memory -> chat: balanced from the registry
    await serve(
        GrpcService(
            name="memory",
            settings=settings,
            register=[lambda server: memory_pb2_grpc.add_MemoryServiceServicer_to_server(built.servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url), *built.probes],
            cleanups=[*built.cleanups, pool.close, registry.close],
            max_receive_bytes=MAX_REQUEST_BYTES,
            registry=registry,
            guards=[upstream_guard(built.chat)] if isinstance(built.chat, Upstream) else [],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "memory")
    configure_tracing("memory", settings.telemetry)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
