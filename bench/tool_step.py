"""The platform's own time per agent tool step, beside a direct call of the same MCP tool with the SDK.

One tool step of an agent run, minus the model: ``AgentRun._run_tool`` as the worker runs it (the call
through ``Toolbox.call`` -> gRPC -> the tasks service's ``McpService`` -> ``McpHub`` -> the MCP SDK -> the stdio
server, the ``tool_call`` step committed before the tool runs and the ``tool_result`` step after it, the
``tool_result`` event to NATS). The tool's own time is the hub's SDK call (timed around the session's
``call_tool`` inside ``McpHub.call``); the platform's own time per step is the step's wall time minus it.
Baseline in the same run: the same tool of the same kind of stdio server called directly with ``mcp.Client``
(``tests/system/mcp_servers/counter.py``'s ``count``). CPU per step is this process's (worker and tasks
service sides both live here; PostgreSQL's and NATS's own CPU is not counted).

    .venv/bin/python bench/tool_step.py --calls 300 --rounds 2

Uses the machine's PostgreSQL (a database of its own, dropped afterwards) and NATS (its own subjects).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import nats
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from sutazai.tasks.v1 import tasks_pb2_grpc
from sutazai_runtime.identity import USER, Identity, IdentityInterceptor, IdentitySettings
from sutazai_runtime.identity.keys import ensure_key_pair
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_tasks.agent_run import AgentRun
from sutazai_tasks.bus import TaskBus
from sutazai_tasks.mcp_client import McpConfig, McpHub, ServerConfig
from sutazai_tasks.mcp_service import McpServicer
from sutazai_tasks.model import NewTask
from sutazai_tasks.steps import Step, StepStore
from sutazai_tasks.store import TaskStore, pool_setup
from sutazai_tasks.streams import Names
from sutazai_tasks.tools import Toolbox, ToolSpec

SERVER = Path(__file__).resolve().parents[1] / "tests" / "system" / "mcp_servers" / "counter.py"
POSTGRES = os.environ.get("SUTAZAI_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS = os.environ.get("SUTAZAI_BENCH_NATS", "nats://127.0.0.1:4222")


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    return f"median {statistics.median(ordered):7.3f} ms  p90 {ordered[int(len(ordered) * 0.9)]:7.3f} ms"


async def direct(count_file: Path, calls: int, out: dict[str, list[float]]) -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER), str(count_file)])
    async with Client(params) as client:
        await client.list_tools()  # as the hub does on connecting (the SDK caches the tools' schemas)
        await client.call_tool("count", {"label": "warm"})
        for i in range(calls):
            cpu, started = time.process_time(), time.perf_counter()
            await client.call_tool("count", {"label": f"d{i}"})
            out["direct SDK call"].append((time.perf_counter() - started) * 1000)
            out["direct SDK call's CPU (this process)"].append((time.process_time() - cpu) * 1000)


class _Timed:
    """Wraps one coroutine method of an object and adds each call's wall time (ms) to ``samples``."""

    def __init__(self, target: Any, name: str, samples: list[float]) -> None:
        method = getattr(target, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                samples.append((time.perf_counter() - started) * 1000)

        setattr(target, name, timed)


async def platform(count_file: Path, calls: int, out: dict[str, list[float]], *, flush: bool) -> None:
    database = f"bench_tools_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{database}"')
    hub = McpHub(McpConfig(servers={"counter": ServerConfig(command=sys.executable,
                                                            args=(str(SERVER), str(count_file)))}))
    # The hub's servicer reads the caller from a verified proof, as in a running tasks service: sign with a key
    # pair of this run, as a task worker does for a task's owner.
    private, public = ensure_key_pair(Path(tempfile.mkdtemp(prefix="sutazai-bench-identity-")))
    identity = IdentitySettings(private_key_file=private, public_keys_file=public)
    server = grpc.aio.server(interceptors=[IdentityInterceptor(identity.verifier())])
    minter = identity.minter("tasks-worker")
    nc = await nats.connect(NATS)
    try:
        pool = await create_pool(POSTGRES.rsplit("/", 1)[0] + "/" + database, **pool_setup())
        await apply_migrations(pool, "tasks", load_migrations(files("sutazai_tasks") / "migrations"))
        hub.start()
        await hub.wait_ready(30)
        tasks_pb2_grpc.add_McpServiceServicer_to_server(McpServicer(hub), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        store, steps = TaskStore(pool), StepStore(pool, flush=flush)
        bus = TaskBus(nc, nc.jetstream(), Names(database))
        run = AgentRun(channel, steps, Toolbox(channel, channel, store, bus), bus, default_max_steps=4,
                       tool_timeout_s=10)
        task, _ = await store.create(NewTask(owner_id="bench", task_type="agent", agent_id="a",
                                             payload_json=json.dumps({"input": "x"})))
        await pool.execute("UPDATE tasks.tasks SET status = 'running', attempts = 1 WHERE id = $1", uuid.UUID(task.id))
        running = await store.get(task.id)
        assert running is not None
        spec = ToolSpec("counter/count", "", {})
        def metadata() -> tuple[tuple[str, str], ...]:
            return minter.attach(Identity("bench", frozenset({USER}))).to_metadata()
        # The parts, timed where they happen (the same objects the step uses).
        connection = hub._connections["counter"]  # the tool's own time is the SDK call inside the hub
        tool: list[float] = []
        session_call = connection.client.call_tool  # type: ignore[union-attr]

        async def timed_tool(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await session_call(*args, **kwargs)
            finally:
                tool.append((time.perf_counter() - started) * 1000)

        connection.client.call_tool = timed_tool  # type: ignore[union-attr, method-assign]
        _Timed(steps, "commit", out["  one step's commit (PostgreSQL; tool_call + tool_result per tool step)"])
        _Timed(bus, "event", out["  event to NATS"])
        history: list[Step] = []
        for i in range(calls + 1):
            arguments = json.dumps({"label": f"p{i}"})
            call = {"id": f"call_{len(history)}_0", "name": spec.model_name, "arguments": arguments}
            history.append(Step(len(history), "model", {"content": "", "tool_calls": [call]}))
            cpu, started = time.process_time(), time.perf_counter()
            step = await run._run_tool(running, call, spec, history, metadata)  # one step, no model
            wall, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
            history.append(step)
            if i == 0:  # warm-up
                for samples in out.values():
                    samples.clear()
                tool.clear()
                continue
            out["platform tool step"].append(wall)
            out["  the tool's own time (SDK call in the hub)"].append(tool[-1])
            out["platform's own time per step"].append(wall - tool[-1])
            out["platform tool step's CPU (this process, SDK client included)"].append(cpu)
        await channel.close()
        await pool.close()
    finally:
        await server.stop(None)
        await hub.close()
        await nc.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["direct", "platform"], help="one side (for a profiler)")
    parser.add_argument("--flush", action="store_true",
                        help="steps wait for the WAL flush (SUTAZAI_TASKS_AGENT_STEPS_FLUSH=true)")
    args = parser.parse_args()
    direct_out: dict[str, list[float]] = defaultdict(list)
    platform_out: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):  # alternate the order so neither always runs on a warmer machine
            order = ("direct", "platform") if r % 2 == 0 else ("platform", "direct")
            for name in order:
                if args.only and name != args.only:
                    continue
                part: dict[str, list[float]] = defaultdict(list)
                if name == "direct":
                    await direct(Path(tmp) / f"direct{r}.txt", args.calls, part)
                    target = direct_out
                else:
                    await platform(Path(tmp) / f"platform{r}.txt", args.calls, part, flush=args.flush)
                    target = platform_out
                for key, samples in part.items():
                    target[key] += samples
    results = {**direct_out, **platform_out}
    for name, samples in results.items():
        print(f"{name:72s} {_ms(samples)}")  # noqa: T201
    if direct_out and platform_out:
        d, t = statistics.median(results["direct SDK call"]), statistics.median(
            results["  the tool's own time (SDK call in the hub)"])
        print(f"the hub's SDK call vs the direct one: {t - d:+.3f} ms (median)")  # noqa: T201
        cpu = (statistics.median(results["platform tool step's CPU (this process, SDK client included)"])
               - statistics.median(results["direct SDK call's CPU (this process)"]))
        print(f"CPU per step beyond the direct SDK call's: {cpu:.3f} ms (medians)")  # noqa: T201
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # noqa: T201
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    (out / "tool_step.json").write_text(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
