"""``python -m sutazai_agents``: wiring only."""

from importlib.resources import files

import uvloop
from sutazai.agents.v1 import agents_pb2_grpc
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_runtime.probes import postgres_probe
from sutazai_runtime.startup import connect_with_retry

from sutazai_agents.config import Settings
from sutazai_agents.server import SERVICE, AgentServicer


async def run(settings: Settings) -> None:
    pool = await connect_with_retry(
        "postgres", lambda: create_pool(settings.database_url), timeout_s=settings.startup_timeout_s
    )
    await apply_migrations(pool, "agents", load_migrations(files("sutazai_agents") / "migrations"))
    servicer = AgentServicer()
    await serve(
        GrpcService(
            name="agents",
            settings=settings,
            register=[lambda server: agents_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url)],
            cleanups=[pool.close],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "agents")
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
