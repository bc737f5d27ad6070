"""``python -m sutazai_agents``: wiring only."""

import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files

import uvloop
from sutazai.agents.v1 import agents_pb2_grpc
from sutazai_runtime import subjects
from sutazai_runtime.discovery import open_registry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.nats import connect_nats
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_runtime.probes import postgres_probe
from sutazai_runtime.resilience.guards import upstream_guard
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy
from sutazai_runtime.startup import connect_with_retry
from sutazai_runtime.telemetry import configure_tracing

from sutazai_agents.config import Settings
from sutazai_agents.files import FileAgents
from sutazai_agents.models import ModelCatalog
from sutazai_agents.server import SERVICE, AgentServicer
from sutazai_agents.service import AgentRegistry
from sutazai_agents.store import AgentStore


async def run(settings: Settings) -> None:
    pool = await connect_with_retry(
        "postgres", lambda: create_pool(settings.database_url), timeout_s=settings.startup_timeout_s
    )
    await apply_migrations(pool, "agents", load_migrations(files("sutazai_agents") / "migrations"))
    registry = await connect_with_retry(
        "registry", lambda: open_registry(settings.discovery, client_name="sutazai-agents",
                                          static_addresses={"chat": settings.chat_addr}),
        timeout_s=settings.startup_timeout_s,
    )
    # chat's instances from the registry's watch, balanced and protected per call
    chat = Upstream("chat", registry=registry, policy=UpstreamPolicy(timeout_s=settings.models_timeout_s))
    file_agents = FileAgents(settings.dir)
    file_agents.load_all()
    close_announcer = await _announcer(settings, file_agents)
    models = ModelCatalog(chat, timeout_s=settings.models_timeout_s, ttl_s=settings.models_cache_s)
    servicer = AgentServicer(AgentRegistry(file_agents, AgentStore(pool), models))
    await serve(
        GrpcService(
            name="agents",
            settings=settings,
            register=[lambda server: agents_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url)],
            cleanups=[chat.close, pool.close, registry.close, *([close_announcer] if close_announcer else [])],
            background=[file_agents.watch],
            registry=registry,
            guards=[upstream_guard(chat)],
        )
    )


async def _announcer(settings: Settings, file_agents: FileAgents) -> Callable[[], Awaitable[None]] | None:
    """Announce hot-reloaded definition files over NATS (the gateway drops its cached agents). Best effort:
    without NATS the service runs, and caches see the change when their entries expire."""
    try:
        nc = await connect_nats(settings.discovery.nats_url, name="sutazai-agents")
    except Exception as exc:
        logging.getLogger(__name__).warning("agent file changes will not be announced (no NATS): %s", exc)
        return None
    subject = subjects.agents_changed(settings.discovery.bucket)

    async def announce() -> None:
        await nc.publish(subject, b"")

    file_agents.on_change = announce
    return nc.close


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "agents")
    configure_tracing("agents", settings.telemetry)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # our own lines name each changed file
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
