"""MCP servers over REST: the configured servers with their tools and health, and the original's
``POST /api/v1/mcp/execute``. The tasks service holds the sessions (``sutazai.tasks.v1.McpService``)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc

from sutazai_gateway.api.deps import CurrentUser, StateDep
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors

router = PrefixedRouter(prefix="/api/v1/mcp", tags=["mcp"])
_PROBLEM = {"content": {"application/problem+json": {}}}


def _stub(state: StateDep) -> tasks_pb2_grpc.McpServiceStub:
    return state.upstreams["tasks"].stub(tasks_pb2_grpc.McpServiceStub)


@router.get("/servers")
async def servers(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    with upstream_errors("tasks"):
        reply = await _stub(state).ListServers(tasks_pb2.ListMcpServersRequest(), metadata=user.to_metadata(),
                                               timeout=10)
    listed = [{"name": s.name, "transport": s.transport, "healthy": s.healthy, "error": s.error or None,
               "shared": s.shared, "restarts": s.restarts,
               "tools": [{"name": t.name, "description": t.description,
                          "input_schema": json.loads(t.input_schema_json or "{}"),
                          "requires_approval": t.requires_approval} for t in s.tools]}
              for s in reply.servers]
    return {"servers": listed, "count": len(listed)}


class Execute(BaseModel):
    server: str = Field(min_length=1, max_length=64)
    tool: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, le=600)


@router.post("/execute", responses={403: {"description": "the server is not shared and the caller not an admin",
                                          **_PROBLEM},
                                    404: {"description": "no such server or tool", **_PROBLEM},
                                    503: {"description": "the MCP server is not connected", **_PROBLEM}})
async def execute(body: Execute, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """Run one tool of a configured MCP server (an admin, or any user where the server is marked shared)."""
    request = tasks_pb2.CallMcpToolRequest(server=body.server, tool=body.tool,
                                           arguments_json=json.dumps(body.arguments), timeout_s=body.timeout_s or 0)
    with upstream_errors("tasks"):
        reply = await _stub(state).CallTool(request, metadata=user.to_metadata(),
                                            timeout=(body.timeout_s or 600) + 5)
    return {"success": not reply.is_error, "server": body.server, "tool": body.tool, "content": reply.content,
            "structured": json.loads(reply.structured_json) if reply.structured_json else None,
            "truncated": reply.truncated, "duration_ms": round(reply.duration_ms, 3)}
