"""``python -m sutazai_memory``: wiring only."""

from importlib.resources import files

import uvloop
from sutazai.memory.v1 import memory_pb2_grpc
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_runtime.probes import postgres_probe
from sutazai_runtime.startup import connect_with_retry

from sutazai_memory.config import Settings
from sutazai_memory.server import SERVICE, MemoryServicer


async def run(settings: Settings) -> None:
    pool = await connect_with_retry(
        "postgres", lambda: create_pool(settings.database_url), timeout_s=settings.startup_timeout_s
    )
    await apply_migrations(pool, "memory", load_migrations(files("sutazai_memory") / "migrations"))
    servicer = MemoryServicer()
    await serve(
        GrpcService(
            name="memory",
            settings=settings,
            register=[lambda server: memory_pb2_grpc.add_MemoryServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url)],
            cleanups=[pool.close],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "memory")
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
