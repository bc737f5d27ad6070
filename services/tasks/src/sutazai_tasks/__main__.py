"""``python -m sutazai_tasks`` (the gRPC server) or ``python -m sutazai_tasks worker``: wiring only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from importlib.resources import files

import aiohttp
import asyncpg
import uvloop
from prometheus_client import start_http_server
from sutazai.tasks.v1 import tasks_pb2_grpc
from sutazai_runtime.discovery import open_registry
from sutazai_runtime.grpc_client import open_channel
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.nats import connect_nats, ensure_stream
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_runtime.probes import nats_probe, postgres_probe
from sutazai_runtime.process import freeze_startup_objects
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy
from sutazai_runtime.startup import connect_with_retry
from sutazai_runtime.telemetry import configure_tracing

from sutazai_tasks import handlers
from sutazai_tasks.agent_run import AgentRun
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.capacity import ModelSlots, watch_capacity
from sutazai_tasks.config import Settings
from sutazai_tasks.mcp_client import McpHub, load_config
from sutazai_tasks.mcp_service import MCP_SERVICE, McpServicer
from sutazai_tasks.memory_context import MemoryContext
from sutazai_tasks.memory_tools import MemoryTools
from sutazai_tasks.mesh_delivery import MeshDelivery
from sutazai_tasks.model import WORKER_ISSUER
from sutazai_tasks.orchestration import Orchestrator
from sutazai_tasks.queue_depth import sample_queue_depth
from sutazai_tasks.server import SERVICE, TaskServicer, sweep_stale
from sutazai_tasks.steps import StepStore
from sutazai_tasks.store import TaskStore, pool_setup
from sutazai_tasks.streams import Names
from sutazai_tasks.tools import Toolbox
from sutazai_tasks.worker import Worker


async def _connect(settings: Settings, name: str) -> tuple[asyncpg.Pool, TaskBus]:
    timeout = settings.startup_timeout_s
    pool = await connect_with_retry(
        "postgres", lambda: create_pool(settings.database_url, max_size=10, **pool_setup()), timeout_s=timeout
    )
    await apply_migrations(pool, "tasks", load_migrations(files("sutazai_tasks") / "migrations"))
    nc = await connect_with_retry("nats", lambda: connect_nats(settings.nats_url, name=name), timeout_s=timeout)
    js = nc.jetstream(timeout=5.0)
    names = Names(settings.namespace)
    for stream in names.streams():
        await ensure_stream(js, stream, disposable=names.disposable(stream.name or ""))
    bus = TaskBus(nc, js, names)
    await bus.ensure_consumers()
    return pool, bus


async def run_server(settings: Settings) -> None:
    pool, bus = await _connect(settings, "sutazai-tasks")
    store = TaskStore(pool)
    servicer = TaskServicer(store, bus)
    hub = McpHub(load_config(settings.mcp_servers_file, os.environ))  # ${VAR} credentials from the environment
    hub.start()
    mcp_servicer = McpServicer(hub)
    await serve(
        GrpcService(
            name="tasks",
            settings=settings,
            register=[lambda server: tasks_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server),
                      lambda server: tasks_pb2_grpc.add_McpServiceServicer_to_server(mcp_servicer, server)],
            service_names=[SERVICE.full_name, MCP_SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url), nats_probe(bus.nc, settings.nats_url)],
            cleanups=[hub.close, bus.nc.drain, pool.close],
            background=[lambda: sweep_stale(store, bus, every_s=settings.sweep_interval_s,
                                            older_than_s=settings.sweep_after_s),
                        lambda: sample_queue_depth(store, bus, every_s=settings.queue_sample_interval_s)],
        )
    )


async def run_worker(settings: Settings) -> None:
    minter = settings.identity.minter(WORKER_ISSUER)  # no key, or one nobody trusts: no start
    pool, bus = await _connect(settings, "sutazai-tasks-worker")
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host)
    registry = await connect_with_retry(
        "registry", lambda: open_registry(settings.discovery, client_name="sutazai-tasks-worker",
                                          static_addresses={"agents": settings.agents_addr,
                                                            "chat": settings.chat_addr,
                                                            "memory": settings.memory_addr}),
        timeout_s=settings.startup_timeout_s,
    )
    # instances from the registry's watch, balanced and protected per call (a long agent run: no per-try cap)
    agents = Upstream("agents", registry=registry, policy=UpstreamPolicy(timeout_s=10.0, per_try_timeout_s=5.0))
    chat = Upstream("chat", registry=registry, policy=UpstreamPolicy(timeout_s=settings.chat_timeout_s))
    http = aiohttp.ClientSession()
    # recall (memory_context.py) and the memory tools (memory_tools.py) share one balanced upstream
    memory_upstream = Upstream("memory", registry=registry, policy=UpstreamPolicy(timeout_s=10.0))
    memory = MemoryContext(memory_upstream, limit=settings.memory_recall_limit)  # type: ignore[arg-type]
    tasks = open_channel(settings.tasks_addr)  # its McpService runs agents' MCP tools
    store = TaskStore(pool)
    toolbox = Toolbox(agents, tasks, store, bus, MemoryTools(memory_upstream))
    run = AgentRun(chat, StepStore(pool, flush=settings.agent_steps_flush), toolbox, bus,
                   default_max_steps=settings.agent_max_steps, tool_timeout_s=settings.tool_timeout_s)
    slots = ModelSlots(settings.worker_default_model_slots)
    runner = handlers.AgentRunner(agents, chat, minter, slots, admit_wait_s=settings.worker_admit_wait_s,
                                  toolbox=toolbox, run=run, memory=memory)
    worker = Worker(
        store, bus,
        {"echo": handlers.echo, "agent": runner, "orchestrate": Orchestrator(store, bus),
         "mesh": MeshDelivery(registry, http)},
        batch=settings.worker_batch, retry_base_s=settings.retry_base_s,
        max_in_flight=settings.worker_max_in_flight, busy_base_s=settings.worker_busy_base_s,
    )
    capacity = asyncio.create_task(watch_capacity(chat, slots, every_s=settings.worker_capacity_interval_s))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    freeze_startup_objects()
    try:
        # The batch in hand finishes (or is redelivered if it outlasts the stop); no new batch is pulled.
        await worker.run(stop)
    finally:
        capacity.cancel()
        # Close, not drain: unacknowledged messages are redelivered anyway, and a drain of pull
        # subscriptions can wait out its whole timeout. Bounded so SIGTERM to exit stays short.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await agents.close()
                await chat.close()
                await memory_upstream.close()
                await tasks.close()
                await registry.close()
                await http.close()
                await bus.nc.close()
                await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sutazai_tasks")
    parser.add_argument("role", nargs="?", choices=["server", "worker"], default="server")
    role = parser.parse_args().role
    settings = Settings()
    configure_logging(settings.log_level, "tasks" if role == "server" else "tasks-worker")
    configure_tracing("tasks" if role == "server" else "tasks-worker", settings.telemetry)
    uvloop.run(run_server(settings) if role == "server" else run_worker(settings))


if __name__ == "__main__":
    main()
