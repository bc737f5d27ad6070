"""Agents: the registry over REST. Translation to ``sutazai.agents.v1.AgentService`` only.

``GET /api/v1/agents`` answers a JSON **list**, as the original did, so that its clients keep working;
paging travels in headers: ``X-Total-Count`` (how many match), ``X-Limit``, ``X-Offset`` and an RFC 8288
``Link`` header with ``next`` / ``prev`` when there are more pages.

Reads are served from the API cache (tags ``agents``, ``agents:list``, ``agent:<id>``); a write through the
gateway invalidates what it changed; an agent file changed on disk is announced by the agents service over NATS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.common.v1 import common_pb2
from sutazai_runtime.timestamps import iso_of

from sutazai_gateway.api.cached import cached_json, invalidate
from sutazai_gateway.api.deps import AdminUser, CurrentUser, GatewayState, StateDep, call_metadata
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/agents", tags=["agents"])

AgentId = Annotated[str, Path(min_length=1, max_length=64, description="lower-case letters, digits and '-'")]
Status = Literal["active", "unavailable", "unknown"]
Source = Literal["file", "api"]


class AgentSummary(BaseModel):
    """One item of the list: the original's ``{id, name, status, capabilities}`` and more."""

    id: str
    name: str
    status: Status = Field(description="'unavailable' when no backend serves the model; 'unknown' while "
                                       "the chat service cannot tell")
    capabilities: list[str]
    description: str
    model: str
    source: Source = Field(description="'file' (read-only, from the agents folder) or 'api'")


class AgentDetail(AgentSummary):
    tools: list[str]
    color: str
    proactive_triggers: list[str]
    temperature: float | None
    max_tokens: int | None
    max_steps: int | None = None
    requires_approval: list[str] = []
    system_prompt: str
    updated_at: datetime | None
    memory: bool = Field(False, description="the task worker adds the task user's memories to the prompt")


class AgentFields(BaseModel):
    """What a client sets; the agents service validates the values and names any bad field."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    description: str = Field(max_length=4000)
    model: str = Field("", max_length=200, description="empty: the default model alias 'tinyllama'")
    tools: list[str] = Field(default_factory=list, max_length=100)
    color: str = Field("", max_length=32)
    proactive_triggers: list[str] = Field(default_factory=list, max_length=100)
    capabilities: list[str] = Field(default_factory=list, max_length=100)
    temperature: float | None = None
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)  # an int32 on the wire; agents checks the range
    # an int32 on the wire (a larger number was a 500 in the contract run); agents checks the range 1-50
    max_steps: int | None = Field(None, ge=-2**31, le=2**31 - 1, description="an agent run's model calls at most "
                                  "(1-50)")
    requires_approval: list[str] = Field(default_factory=list, max_length=100,
                                         description="tools whose calls wait for the task owner's approval")
    system_prompt: str = Field(max_length=100_000)
    memory: bool = False


class NewAgent(AgentFields):
    id: str = Field(max_length=64, description="lower-case letters, digits and '-'; cannot be changed")


def _stub(state: GatewayState) -> agents_pb2_grpc.AgentServiceStub:
    return state.upstreams["agents"].stub(agents_pb2_grpc.AgentServiceStub)


def _summary(agent: agents_pb2.Agent) -> dict[str, Any]:
    return {
        "id": agent.id, "name": agent.name, "status": agent.status or "unknown",
        "capabilities": list(agent.capabilities), "description": agent.description, "model": agent.model,
        "source": agent.source,
    }


def _detail(agent: agents_pb2.Agent) -> dict[str, Any]:
    return {
        **_summary(agent),
        "tools": list(agent.tools), "color": agent.color, "proactive_triggers": list(agent.proactive_triggers),
        "temperature": agent.temperature if agent.HasField("temperature") else None,
        "max_tokens": agent.max_tokens if agent.HasField("max_tokens") else None,
        "max_steps": agent.max_steps if agent.HasField("max_steps") else None,
        "requires_approval": list(agent.requires_approval),
        "system_prompt": agent.system_prompt, "memory": agent.memory,
        "updated_at": iso_of(agent, "updated_at"),
    }


def _message(agent_id: str, fields: AgentFields) -> agents_pb2.Agent:
    data = fields.model_dump(exclude={"id"})
    return agents_pb2.Agent(id=agent_id, **{k: v for k, v in data.items() if v is not None})


def _link(request: Request, limit: int, offset: int, total: int) -> str | None:
    links = []
    params = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
    if offset + limit < total:
        links.append(f'<{request.url.path}?{urlencode({**params, "limit": limit, "offset": offset + limit})}>; '
                     'rel="next"')
    if offset > 0:
        links.append(f'<{request.url.path}?{urlencode({**params, "limit": limit, "offset": max(0, offset - limit)})}>; '
                     'rel="prev"')
    return ", ".join(links) or None


@router.get("", response_model=list[AgentSummary], responses=problem_responses(400, 401, 422, 503, 504))
async def list_agents(
    request: Request, state: StateDep, user: CurrentUser,
    capability: Annotated[str, Query(max_length=100, description="only agents with this capability")] = "",
    q: Annotated[str, Query(max_length=200, description="words to find in id, name, description, capabilities")] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Every agent the caller may use, sorted by id. A JSON list, as the original answered; the total
    and the next page are in the ``X-Total-Count`` and ``Link`` headers."""
    async def produce() -> tuple[Any, dict[str, str]]:
        request_message = agents_pb2.ListAgentsRequest(
            capability=capability, query=q, page=common_pb2.PageRequest(limit=limit, offset=offset)
        )
        with upstream_errors("agents"):
            reply = await _stub(state).ListAgents(request_message, metadata=call_metadata(user))
        headers = {"X-Total-Count": str(reply.page.total), "X-Limit": str(reply.page.limit),
                   "X-Offset": str(reply.page.offset)}
        if link := _link(request, reply.page.limit, reply.page.offset, reply.page.total):
            headers["Link"] = link
        return [_summary(a) for a in reply.agents], headers

    # Every caller sees the same agents: one entry per query, whoever asks.
    name = f"agents:list:{capability}\x00{q}\x00{limit}\x00{offset}"
    return await cached_json(state, name, ("agents", "agents:list"), produce)


@router.get("/{agent_id}", response_model=AgentDetail, responses=problem_responses(400, 401, 404, 422, 503, 504))
async def get_agent(agent_id: AgentId, request: Request, user: CurrentUser) -> Response:
    # The hot read: the dict is already AgentDetail's shape, so it is serialised directly (response_model
    # stays for the OpenAPI schema; FastAPI does not validate a Response again). The state comes from the
    # request, not StateDep: one dependency fewer to solve.
    state: GatewayState = request.app.state.gateway

    async def produce() -> tuple[Any, dict[str, str]]:
        with upstream_errors("agents"):
            agent = await _stub(state).GetAgent(agents_pb2.GetAgentRequest(id=agent_id), metadata=call_metadata(user))
        return _detail(agent), {}

    return await cached_json(state, f"agent:{agent_id}", ("agents", f"agent:{agent_id}"), produce)


@router.post("", response_model=AgentDetail, status_code=201,
             responses=problem_responses(400, 401, 403, 409, 413, 422, 503, 504))
async def create_agent(body: NewAgent, response: Response, state: StateDep, admin: AdminUser) -> dict[str, Any]:
    """Admin. 409 when the id is taken (by a file or a stored agent); 400 names each invalid field."""
    with upstream_errors("agents"):
        agent = await _stub(state).CreateAgent(
            agents_pb2.CreateAgentRequest(agent=_message(body.id, body)), metadata=admin.to_metadata()
        )
    response.headers["Location"] = f"/api/v1/agents/{agent.id}"
    await invalidate(state, "agents:list", f"agent:{agent.id}")
    return _detail(agent)


@router.put("/{agent_id}", response_model=AgentDetail,
            responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503, 504))
async def replace_agent(agent_id: AgentId, body: AgentFields, state: StateDep, admin: AdminUser) -> dict[str, Any]:
    """Admin. Replaces every field of an API-created agent; file-defined agents are read-only (409)."""
    with upstream_errors("agents"):
        agent = await _stub(state).UpdateAgent(
            agents_pb2.UpdateAgentRequest(agent=_message(agent_id, body)), metadata=admin.to_metadata()
        )
    await invalidate(state, "agents:list", f"agent:{agent_id}")
    return _detail(agent)


@router.delete("/{agent_id}", status_code=204, responses=problem_responses(400, 401, 403, 404, 409, 422, 503, 504))
async def delete_agent(agent_id: AgentId, state: StateDep, admin: AdminUser) -> Response:
    """Admin. 409 for a file-defined agent (remove its file instead); 404 when unknown."""
    with upstream_errors("agents"):
        await _stub(state).DeleteAgent(agents_pb2.DeleteAgentRequest(id=agent_id), metadata=admin.to_metadata())
    await invalidate(state, "agents:list", f"agent:{agent_id}")
    return Response(status_code=204)

