"""The platform as an MCP server at ``/mcp`` (streamable HTTP, the official ``mcp`` SDK), so that desktop
assistants use it: list agents, submit a task, read a task, search and store memories. The caller presents the
gateway's credentials (``Authorization: Bearer <token or API key>`` or ``X-API-Key``) and every tool acts in
the caller's scope (a user sees only their own tasks and memories). Translation to gRPC only, like the REST
routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.common.v1 import common_pb2
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import Identity

from sutazai_gateway.api.deps import GatewayState, caller, presented_credential
from sutazai_gateway.api.routes.memory_common import MEMORY_TIMEOUT_S
from sutazai_gateway.api.routes.tasks import task_json
from sutazai_gateway.auth.service import AuthError
from sutazai_gateway.problems import problem

StateGetter = Callable[[], GatewayState]


def build_mcp_server(state: StateGetter) -> MCPServer:
    mcp = MCPServer("sutazai", instructions="SutazAI: agents on local models. List the agents, submit a task "
                                            "to one, then read the task until it is completed.")

    async def caller_of(ctx: Context) -> Identity:
        request = ctx.request_context.request
        credential = presented_credential(request) if isinstance(request, Request) else None
        if credential is None:
            raise PermissionError("no credential")
        return await caller(state(), credential)

    def stub_agents() -> agents_pb2_grpc.AgentServiceStub:
        return state().upstreams["agents"].stub(agents_pb2_grpc.AgentServiceStub)

    def stub_tasks() -> tasks_pb2_grpc.TaskServiceStub:
        return state().upstreams["tasks"].stub(tasks_pb2_grpc.TaskServiceStub)

    def stub_memory() -> memory_pb2_grpc.MemoryServiceStub:
        return state().upstreams["memory"].stub(memory_pb2_grpc.MemoryServiceStub)

    @mcp.tool()
    async def list_agents(ctx: Context, query: str = "", capability: str = "") -> list[dict[str, Any]]:
        """The platform's agents: id, name, description, capabilities."""
        identity = await caller_of(ctx)
        reply = await _call(stub_agents().ListAgents(agents_pb2.ListAgentsRequest(
            query=query, capability=capability, page=common_pb2.PageRequest(limit=100)),
            metadata=identity.to_metadata(), timeout=10))
        return [{"id": a.id, "name": a.name, "description": a.description, "capabilities": list(a.capabilities)}
                for a in reply.agents]

    @mcp.tool()
    async def submit_task(ctx: Context, agent_id: str, input: str, priority: int = 0) -> dict[str, Any]:
        """Queue a task for an agent; read its result with get_task."""
        identity = await caller_of(ctx)
        request = tasks_pb2.CreateTaskRequest(task_type="agent", agent_id=agent_id, priority=priority,
                                              payload_json=json.dumps({"input": input}).encode())
        task = await _call(stub_tasks().CreateTask(request, metadata=identity.to_metadata(), timeout=10))
        return {"task_id": task.task_id, "status": task_json(task)["status"]}

    @mcp.tool()
    async def get_task(ctx: Context, task_id: str) -> dict[str, Any]:
        """A task's status and, once it is completed, its result (the caller's own tasks only)."""
        identity = await caller_of(ctx)
        task = await _call(stub_tasks().GetTask(tasks_pb2.GetTaskRequest(task_id=task_id),
                                                metadata=identity.to_metadata(), timeout=10))
        return json.loads(json.dumps(task_json(task), default=str))

    @mcp.tool()
    async def search_memory(ctx: Context, query: str, limit: int = 5, agent_id: str = "") -> list[dict[str, Any]]:
        """Search your memories (hybrid: meaning and keywords), most relevant first; agent_id narrows the search
        to the memories of one agent."""
        identity = await caller_of(ctx)
        if not query.strip() or not 1 <= limit <= 100:
            raise ValueError("query must not be empty and limit must be from 1 to 100")
        reply = await _call(stub_memory().SearchMemories(memory_pb2.SearchMemoriesRequest(
            query=query, limit=limit, scope=memory_pb2.Scope(agent_id=agent_id)),
            metadata=identity.to_metadata(), timeout=MEMORY_TIMEOUT_S))
        return [{"id": h.memory.id, "content": h.memory.content, "score": h.score,
                 "agent_id": h.memory.scope.agent_id or None} for h in reply.results]

    @mcp.tool()
    async def store_memory(ctx: Context, content: str, agent_id: str = "") -> dict[str, Any]:
        """Store one memory (a fact, as text) for later searches; agent_id files it under one agent. The same
        content stored twice is one memory (event "duplicate")."""
        identity = await caller_of(ctx)
        if not content.strip() or len(content) > 32_000:
            raise ValueError("content must be 1 to 32000 characters")
        reply = await _call(stub_memory().AddMemories(memory_pb2.AddMemoriesRequest(items=[memory_pb2.MemoryInput(
            content=content, scope=memory_pb2.Scope(agent_id=agent_id))]),
            metadata=identity.to_metadata(), timeout=MEMORY_TIMEOUT_S))
        result = reply.results[0] if reply.results else None
        if result is None or result.event == "skipped":
            raise ValueError(f"not stored: {result.reason if result else 'no result'}")
        return {"id": result.memory.id, "event": result.event}

    return mcp


async def _call(call: Any) -> Any:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise ValueError(f"{exc.code().name}: {exc.details()}") from exc  # the SDK turns it into a tool error


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: a missing or wrong credential is a 401 problem before any MCP work."""

    def __init__(self, mcp: MCPServer, state: StateGetter) -> None:
        # The gateway authenticates every request itself; the SDK's Host check would refuse a gateway behind
        # a proxy or on a non-local name.
        mcp.streamable_http_app(stateless_http=True, json_response=True,
                                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.manager = mcp.session_manager
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        credential = presented_credential(request)
        try:
            if credential is None:
                raise AuthError("this route needs a credential: Authorization: Bearer <token> or X-API-Key")
            await self._state().auth.identify(credential)
        except AuthError as exc:
            response = problem(401, str(exc), instance="/mcp", headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)
