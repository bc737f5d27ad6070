"""``python -m sutazai_tasks``: wiring only."""

from importlib.resources import files

import uvloop
from sutazai.tasks.v1 import tasks_pb2_grpc
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.nats import connect_nats, ensure_stream
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_runtime.probes import nats_probe, postgres_probe
from sutazai_runtime.startup import connect_with_retry

from sutazai_tasks import streams
from sutazai_tasks.config import Settings
from sutazai_tasks.server import SERVICE, TaskServicer


async def run(settings: Settings) -> None:
    timeout = settings.startup_timeout_s
    pool = await connect_with_retry("postgres", lambda: create_pool(settings.database_url), timeout_s=timeout)
    await apply_migrations(pool, "tasks", load_migrations(files("sutazai_tasks") / "migrations"))
    nc = await connect_with_retry(
        "nats", lambda: connect_nats(settings.nats_url, name="sutazai-tasks"), timeout_s=timeout
    )
    js = nc.jetstream(timeout=5.0)
    for stream in streams.ALL:
        await ensure_stream(js, stream)
    servicer = TaskServicer()
    await serve(
        GrpcService(
            name="tasks",
            settings=settings,
            register=[lambda server: tasks_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url), nats_probe(nc, settings.nats_url)],
            cleanups=[nc.drain, pool.close],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "tasks")
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
