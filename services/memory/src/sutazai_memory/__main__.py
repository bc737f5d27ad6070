"""``python -m sutazai_memory``: serve (wiring only), or a maintenance command:

    python -m sutazai_memory reindex    # rebuild the vector index from PostgreSQL (see maintenance.py)
    python -m sutazai_memory optimize   # edge engine: build HNSW, merge segments (service stopped)
"""

import argparse
import asyncio
import json
import sys

import uvloop
from sutazai.memory.v1 import memory_pb2_grpc
from sutazai_runtime.discovery import open_registry
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
from sutazai_memory.wiring import build, migrate, open_events

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
    events = await open_events(settings)
    built = await build(settings, pool, registry=registry, events=events)
    await serve(
        GrpcService(
            name="memory",
            settings=settings,
            register=[lambda server: memory_pb2_grpc.add_MemoryServiceServicer_to_server(built.servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[postgres_probe(pool, settings.database_url), *built.probes],
            cleanups=[*built.cleanups, events.close, pool.close, registry.close],
            max_receive_bytes=MAX_REQUEST_BYTES,
            registry=registry,
            guards=[upstream_guard(built.chat)] if isinstance(built.chat, Upstream) else [],
        )
    )


async def maintain(settings: Settings, command: str) -> dict[str, object]:
    from sutazai_memory.edge_index import EdgeIndex
    from sutazai_memory.maintenance import reindex

    pool = await create_pool(settings.database_url, init=init_connection)
    registry = await open_registry(settings.discovery, client_name="sutazai-memory-maintenance",
                                   static_addresses={"chat": settings.chat_addr})
    try:
        await migrate(pool)
        built = await build(settings, pool, registry=registry, resume=False)
        try:
            if command == "optimize":
                if not isinstance(built.index, EdgeIndex):
                    return {"optimized": False, "reason": "a Qdrant server optimizes on its own"}
                return {"optimized": await asyncio.to_thread(built.index.optimize)}
            done = await reindex(built)
            return {"memories": done.memories, "documents": done.documents, "collections": done.collections,
                    "seconds": round(done.seconds, 1)}
        finally:
            for cleanup in built.cleanups:
                await cleanup()
    finally:
        await registry.close()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sutazai_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["serve", "reindex", "optimize"], default="serve")
    command = parser.parse_args().command
    settings = Settings()
    configure_logging(settings.log_level, "memory")
    configure_tracing("memory", settings.telemetry)
    if command == "serve":
        uvloop.run(run(settings))
        return
    try:
        print(json.dumps(uvloop.run(maintain(settings, command))))  # noqa: T201
    except Exception as exc:  # e.g. the vector folder is locked by a running memory service
        print(f"{command} failed: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(1)


if __name__ == "__main__":
    main()
