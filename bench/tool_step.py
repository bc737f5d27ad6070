"""The platform's own time per agent tool step, beside a direct call of the same MCP tool with the SDK.

One step of an agent run, minus the model: the worker's ``Toolbox.call`` (gRPC to the tasks service's
``McpService`` -> ``McpHub`` -> the MCP SDK -> the stdio server), the step committed to PostgreSQL
(``StepStore.commit``) and the ``tool_result`` event published to NATS. Baseline in the same run: the
same tool of the same kind of stdio server called directly with ``mcp.Client``. The tool itself
(``tests/system/mcp_servers/counter.py``'s ``count``) is in both, so the difference is what the platform adds.

    .venv/bin/python bench/tool_step.py --calls 200

Uses the machine's PostgreSQL (a database of its own, dropped afterwards) and NATS (its own subject).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from importlib.resources import files
from pathlib import Path

import asyncpg
import grpc
import nats
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from sutazai.tasks.v1 import tasks_pb2_grpc
from sutazai_runtime.identity import Identity
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.mcp_client import McpConfig, McpHub, ServerConfig
from sutazai_tasks.mcp_service import McpServicer
from sutazai_tasks.model import NewTask
from sutazai_tasks.steps import StepStore
from sutazai_tasks.store import TaskStore, pool_setup
from sutazai_tasks.streams import Names
from sutazai_tasks.tools import Toolbox, ToolSpec

SERVER = Path(__file__).resolve().parents[1] / "tests" / "system" / "mcp_servers" / "counter.py"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PARTS: dict[str, list[float]] = {"tool call (gRPC, hub, SDK)": [],
                                 "commit to PostgreSQL": [], "event to NATS": []}


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples):7.3f} ms  p90 {sorted(samples)[int(len(samples) * 0.9)]:7.3f} ms"


async def direct(count_file: Path, calls: int) -> list[float]:
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER), str(count_file)])
    out = []
    async with Client(params) as client:
        await client.call_tool("count", {"label": "warm"})
        for i in range(calls):
            started = time.perf_counter()
            await client.call_tool("count", {"label": f"d{i}"})
            out.append((time.perf_counter() - started) * 1000)
    return out


async def platform(count_file: Path, calls: int) -> list[float]:
    database = f"bench_tools_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{database}"')
    hub = McpHub(McpConfig(servers={"counter": ServerConfig(command=sys.executable,
                                                            args=(str(SERVER), str(count_file)))}))
    server = grpc.aio.server()
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        pool = await create_pool(POSTGRES.rsplit("/", 1)[0] + "/" + database, **pool_setup())
        await apply_migrations(pool, "tasks", load_migrations(files("sutazai_tasks") / "migrations"))
        hub.start()
        await hub.wait_ready(30)
        tasks_pb2_grpc.add_McpServiceServicer_to_server(McpServicer(hub), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        store, steps = TaskStore(pool), StepStore(pool)
        bus = TaskBus(nc, nc.jetstream(), Names(database))
        toolbox = Toolbox(channel, channel, store, bus)
        task, _ = await store.create(NewTask(owner_id="bench", task_type="agent", payload={"input": "x"},
                                             agent_id="a"))
        await pool.execute("UPDATE tasks.tasks SET status = 'running' WHERE id = $1", uuid.UUID(task.id))
        spec = ToolSpec("counter/count", "", {})
        metadata = Identity("bench").to_metadata()
        await toolbox.call(spec, {"label": "warm"}, task, "w", metadata, 10)
        out = []
        for i in range(calls):
            started = time.perf_counter()
            outcome = await toolbox.call(spec, {"label": f"p{i}"}, task, f"c{i}", metadata, 10)
            called = time.perf_counter()
            await steps.commit(task.id, i, "tool_result", {"call_id": f"c{i}", "content": outcome.content}, 1)
            committed = time.perf_counter()
            await bus.event(task.id, "tool_result", "running", step=i, content=outcome.content)
            out.append((time.perf_counter() - started) * 1000)
            PARTS["tool call (gRPC, hub, SDK)"].append((called - started) * 1000)
            PARTS["commit to PostgreSQL"].append((committed - called) * 1000)
            PARTS["event to NATS"].append((time.perf_counter() - committed) * 1000)
        await channel.close()
        await pool.close()
        return out
    finally:
        await server.stop(None)
        await hub.close()
        await nc.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"direct": [], "platform": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):  # alternate the order so neither always runs on a warmer machine
            order = ("direct", "platform") if r % 2 == 0 else ("platform", "direct")
            for name in order:
                run = direct if name == "direct" else platform
                results[name] += await run(Path(tmp) / f"{name}.txt", args.calls)
    d, p = statistics.median(results["direct"]), statistics.median(results["platform"])
    print(f"direct SDK call      {_ms(results['direct'])}")  # noqa: T201
    print(f"platform tool step   {_ms(results['platform'])}")  # noqa: T201
    print(f"added per step: {p - d:.3f} ms (median), ratio {p / d:.2f}")  # noqa: T201
    for name, samples in PARTS.items():
        print(f"  {name:28s} {_ms(samples)}")  # noqa: T201
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / "tool_step.json").write_text(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
