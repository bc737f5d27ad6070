"""The tools an agent run may call: the platform's own (list agents, hand a sub-task to another agent, search
and store memories: ``memory_tools``) and those of the configured MCP servers (``server/tool``, run by the
tasks service's ``McpService``).

The model sees ``server__tool`` (OpenAI's tool names allow no ``/``); events and results use ``server/tool``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.common.v1 import common_pb2
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.resilience.upstream import Upstream, stub_of

from sutazai_tasks.bus import TaskBus
from sutazai_tasks.memory_tools import SEARCH_PARAMETERS, STORE_PARAMETERS, MemoryTools
from sutazai_tasks.model import CallMetadata, NewTask, TaskRow
from sutazai_tasks.store import TaskStore

_LISTING_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str  # "list_agents", or "server/tool"
    description: str
    parameters: dict[str, Any]
    requires_approval: bool = False
    # Safe to run again when a run resumes after a worker died while the call ran (read-only or idempotent).
    # MCP tools are not assumed to be: the model is told the call may have taken effect instead.
    repeatable: bool = False

    @property
    def model_name(self) -> str:
        return self.name.replace("/", "__")


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    content: str
    is_error: bool = False
    duration_ms: float = 0.0


PLATFORM_TOOLS = {
    "list_agents": ToolSpec("list_agents", "List the platform's agents (id, name, description).",
                            {"type": "object", "properties": {"query": {"type": "string"}}}, repeatable=True),
    "delegate_to_agent": ToolSpec(
        "delegate_to_agent", "Hand a sub-task to another agent and wait for its answer.",
        {"type": "object", "properties": {"agent_id": {"type": "string"}, "input": {"type": "string"}},
         "required": ["agent_id", "input"]}, repeatable=True),  # the sub-task's idempotency key
    "search_memory": ToolSpec(
        "search_memory", "Search what you remember about this user (your long-term memory), most relevant first.",
        SEARCH_PARAMETERS, repeatable=True),
    "store_memory": ToolSpec(
        "store_memory", "Remember a fact about this user for later runs (your long-term memory).", STORE_PARAMETERS,
        repeatable=True),  # the memory service de-duplicates by scope and content
}


class Toolbox:
    def __init__(self, agents: grpc.aio.Channel | Upstream, tasks: grpc.aio.Channel, store: TaskStore, bus: TaskBus,
                 memory: MemoryTools | None = None) -> None:
        self._agents = stub_of(agents, agents_pb2_grpc.AgentServiceStub)
        self._memory = memory
        self._mcp = stub_of(tasks, tasks_pb2_grpc.McpServiceStub)
        self._store = store
        self._bus = bus
        self._listing: tuple[float, dict[str, ToolSpec]] = (0.0, {})

    async def _mcp_tools(self, metadata: CallMetadata) -> dict[str, ToolSpec]:
        at, tools = self._listing
        if time.monotonic() - at < _LISTING_TTL_S:
            return tools
        reply = await self._mcp.ListServers(tasks_pb2.ListMcpServersRequest(), metadata=metadata(), timeout=5)
        tools = {f"{t.server}/{t.name}": ToolSpec(f"{t.server}/{t.name}", t.description,
                                                  json.loads(t.input_schema_json or "{}"), t.requires_approval)
                 for s in reply.servers for t in s.tools}
        self._listing = (time.monotonic(), tools)
        return tools

    async def resolve(self, names: Sequence[str], approval: Sequence[str],
                      metadata: CallMetadata) -> list[ToolSpec]:
        """The tools among ``names`` that exist; an MCP server that does not answer offers none for now."""
        found: list[ToolSpec] = []
        mcp: dict[str, ToolSpec] = {}
        if any("/" in n for n in names):
            try:
                mcp = await self._mcp_tools(metadata)
            except grpc.aio.AioRpcError:
                mcp = {}
        for name in names:
            spec = PLATFORM_TOOLS.get(name) or mcp.get(name)
            if spec is None:
                continue
            if name in approval and not spec.requires_approval:
                spec = dataclasses.replace(spec, requires_approval=True)
            found.append(spec)
        return found

    async def call(self, spec: ToolSpec, arguments: dict[str, Any], task: TaskRow, call_id: str,
                   metadata: CallMetadata, timeout_s: float) -> ToolOutcome:
        """Run one tool within ``timeout_s``; every failure is an outcome the model reads, never a crash."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                if spec.name == "list_agents":
                    content, is_error = await self._list_agents(arguments, metadata), False
                elif spec.name == "delegate_to_agent":
                    content, is_error = await self._delegate(arguments, task, call_id, timeout_s)
                elif spec.name in ("search_memory", "store_memory"):
                    content, is_error = await self._memory_tool(spec.name, arguments, task, metadata, timeout_s)
                else:
                    server, tool = spec.name.split("/", 1)
                    reply = await self._mcp.CallTool(
                        tasks_pb2.CallMcpToolRequest(server=server, tool=tool, arguments_json=json.dumps(arguments),
                                                     timeout_s=timeout_s),
                        metadata=metadata(), timeout=timeout_s + 1)
                    content, is_error = reply.content, reply.is_error
        except TimeoutError:
            content, is_error = f"the tool {spec.name} did not finish within {timeout_s:g} s", True
        except grpc.aio.AioRpcError as exc:
            content, is_error = f"the tool {spec.name} failed: {exc.code().name}: {exc.details()}", True
        return ToolOutcome(content, is_error, round((time.perf_counter() - started) * 1000, 3))

    async def _memory_tool(self, name: str, arguments: dict[str, Any], task: TaskRow,
                           metadata: CallMetadata, timeout_s: float) -> tuple[str, bool]:
        if self._memory is None:
            return f"{name}: this worker has no memory service configured", True
        run = self._memory.search if name == "search_memory" else self._memory.store
        return await run(arguments, task, metadata, timeout_s)

    async def _list_agents(self, arguments: dict[str, Any], metadata: CallMetadata) -> str:
        reply = await self._agents.ListAgents(
            agents_pb2.ListAgentsRequest(query=str(arguments.get("query") or ""),
                                         page=common_pb2.PageRequest(limit=50)),
            metadata=metadata(), timeout=10)
        return json.dumps([{"id": a.id, "name": a.name, "description": a.description[:200]} for a in reply.agents])

    async def _delegate(self, arguments: dict[str, Any], task: TaskRow, call_id: str,
                        timeout_s: float) -> tuple[str, bool]:
        agent_id, text = str(arguments.get("agent_id") or ""), str(arguments.get("input") or "")
        if not agent_id or not text.strip():
            return "delegate_to_agent needs 'agent_id' and a non-empty 'input'", True
        # The idempotency key makes a resumed run find the same sub-task instead of starting a second one.
        child, created = await self._store.create(NewTask(
            owner_id=task.owner_id, task_type="agent", payload_json=json.dumps({"input": text}), agent_id=agent_id,
            idempotency_key=f"delegate:{task.id}:{call_id}", parent_id=task.id, priority=task.priority,
            timeout_s=max(1, int(timeout_s))))
        if created:
            await self._bus.dispatch(child)
        while True:
            row = await self._store.get(child.id)
            if row is not None and row.terminal:
                if row.status == "completed":
                    result = row.result()
                    output = result.get("output") if isinstance(result, dict) else result
                    return str(output), False
                return f"the sub-task {row.id} ended {row.status}: {row.error or ''}", True
            await asyncio.sleep(0.5)
