"""gRPC servicer of the agent registry: translates messages and maps domain errors to status codes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.common.v1 import common_pb2
from sutazai_runtime.identity import require_admin, require_identity
from sutazai_runtime.timestamps import to_timestamp

from sutazai_agents.definitions import AgentDefinition, validate_definition
from sutazai_agents.errors import (
    AgentExistsError,
    AgentNotFoundError,
    AgentsError,
    DefinitionError,
    ReadOnlyAgentError,
)
from sutazai_agents.registry import Agent, Status
from sutazai_agents.service import AgentRegistry

SERVICE = agents_pb2.DESCRIPTOR.services_by_name["AgentService"]
log = logging.getLogger(__name__)
T = TypeVar("T")

_CODES: dict[type[AgentsError], grpc.StatusCode] = {
    DefinitionError: grpc.StatusCode.INVALID_ARGUMENT,
    AgentNotFoundError: grpc.StatusCode.NOT_FOUND,
    AgentExistsError: grpc.StatusCode.ALREADY_EXISTS,
    ReadOnlyAgentError: grpc.StatusCode.FAILED_PRECONDITION,
}


def to_message(agent: Agent, status: Status) -> agents_pb2.Agent:
    d = agent.definition
    updated_at = to_timestamp(agent.updated_at)
    return agents_pb2.Agent(
        id=d.id, name=d.name, description=d.description, model=d.model, tools=d.tools, color=d.color,
        proactive_triggers=d.proactive_triggers, capabilities=d.capabilities, temperature=d.temperature,
        max_tokens=d.max_tokens, system_prompt=d.system_prompt, source=agent.source, status=status,
        updated_at=updated_at, memory=d.memory, max_steps=d.max_steps, requires_approval=d.requires_approval,
    )


def from_message(message: agents_pb2.Agent) -> AgentDefinition:
    """The definition in a request. Output-only fields (source, status, updated_at) are ignored; an
    empty model means the default one."""
    data: dict[str, Any] = {
        "id": message.id, "name": message.name, "description": message.description,
        "tools": list(message.tools), "color": message.color,
        "proactive_triggers": list(message.proactive_triggers), "capabilities": list(message.capabilities),
        "system_prompt": message.system_prompt, "memory": message.memory,
        "requires_approval": list(message.requires_approval),
    }
    if message.HasField("max_steps"):
        data["max_steps"] = message.max_steps
    if message.model:
        data["model"] = message.model
    if message.HasField("temperature"):
        data["temperature"] = message.temperature
    if message.HasField("max_tokens"):
        data["max_tokens"] = message.max_tokens
    return validate_definition(data, "request")


async def _guarded(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except AgentsError as exc:
        code = next((c for t, c in _CODES.items() if isinstance(exc, t)), grpc.StatusCode.INTERNAL)
        await context.abort(code, str(exc))
        raise  # abort raises; this line is never reached


class AgentServicer(agents_pb2_grpc.AgentServiceServicer):
    def __init__(self, registry: AgentRegistry) -> None:
        self._registry = registry

    async def ListAgents(
        self, request: agents_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.ListAgentsResponse:
        await require_identity(context)
        if request.page.limit < 0 or request.page.offset < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page.limit and page.offset must not be negative")
        page = await self._registry.list(
            capability=request.capability, query=request.query, limit=request.page.limit, offset=request.page.offset
        )
        status = await self._registry.statuses()
        return agents_pb2.ListAgentsResponse(
            agents=[to_message(a, status(a)) for a in page.items],
            page=common_pb2.PageInfo(total=page.total, limit=page.limit, offset=page.offset),
        )

    async def GetAgent(
        self, request: agents_pb2.GetAgentRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.Agent:
        await require_identity(context)
        agent = await _guarded(context, lambda: self._registry.get(request.id))
        return to_message(agent, (await self._registry.statuses())(agent))

    async def CreateAgent(
        self, request: agents_pb2.CreateAgentRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.Agent:
        identity = await require_admin(context)

        async def create() -> Agent:
            return await self._registry.create(from_message(request.agent), identity.user_id)

        agent = await _guarded(context, create)
        log.info("agent created", extra={"agent": agent.id, "by": identity.user_id})
        return to_message(agent, (await self._registry.statuses())(agent))

    async def UpdateAgent(
        self, request: agents_pb2.UpdateAgentRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.Agent:
        identity = await require_admin(context)

        async def update() -> Agent:
            return await self._registry.update(from_message(request.agent))

        agent = await _guarded(context, update)
        log.info("agent updated", extra={"agent": agent.id, "by": identity.user_id})
        return to_message(agent, (await self._registry.statuses())(agent))

    async def DeleteAgent(
        self, request: agents_pb2.DeleteAgentRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.DeleteAgentResponse:
        identity = await require_admin(context)
        await _guarded(context, lambda: self._registry.delete(request.id))
        log.info("agent deleted", extra={"agent": request.id, "by": identity.user_id})
        return agents_pb2.DeleteAgentResponse(deleted=True)
