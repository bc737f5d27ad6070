"""gRPC servicer of ``McpService``: the configured MCP servers and their tools, served by the tasks service
that holds their sessions. Workers call tools through it; the gateway lists and executes."""

from __future__ import annotations

import json

import grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import require_identity

from sutazai_tasks.mcp_client import McpHub, McpUnavailableError, UnknownToolError
from sutazai_tasks.model import WORKER_ISSUER

MCP_SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["McpService"]


class McpServicer(tasks_pb2_grpc.McpServiceServicer):
    def __init__(self, hub: McpHub) -> None:
        self._hub = hub

    async def ListServers(
        self, request: tasks_pb2.ListMcpServersRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.ListMcpServersResponse:
        await require_identity(context)
        return tasks_pb2.ListMcpServersResponse(servers=[
            tasks_pb2.McpServerInfo(
                name=name, transport=config.transport, healthy=healthy, error=error, shared=config.shared,
                restarts=restarts, tools=[tasks_pb2.McpToolInfo(
                    server=t.server, name=t.name, description=t.description,
                    input_schema_json=json.dumps(t.input_schema), requires_approval=t.requires_approval)
                    for t in tools])
            for name, config, healthy, error, tools, restarts in self._hub.servers()
        ])

    async def CallTool(
        self, request: tasks_pb2.CallMcpToolRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.CallMcpToolResponse:
        identity = await require_identity(context)
        config = self._hub.config_of(request.server)
        if config is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no MCP server named {request.server!r}")
        assert config is not None
        # Workers run agents' tools as the task's owner; the agent definition already named the tool. The proof's
        # issuer says it is a worker (a signed claim: metadata saying so would be believed from anyone).
        worker = identity.issuer == WORKER_ISSUER
        if not (identity.is_admin or config.shared or worker):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"MCP server {request.server!r} is not shared: only admins may call its tools")
        try:
            arguments = json.loads(request.arguments_json) if request.arguments_json else {}
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"arguments are not valid JSON: {exc}")
            raise
        if not isinstance(arguments, dict):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "arguments must be a JSON object")
        try:
            out = await self._hub.call(request.server, request.tool, arguments, request.timeout_s)
        except UnknownToolError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise
        except McpUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise
        return tasks_pb2.CallMcpToolResponse(
            content=out.content, is_error=out.is_error, truncated=out.truncated, duration_ms=out.duration_ms,
            structured_json=json.dumps(out.structured) if out.structured is not None else "")
