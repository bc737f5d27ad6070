"""The registry's use cases over its two sources (files, the store) and the model catalog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sutazai_agents.definitions import AgentDefinition
from sutazai_agents.errors import AgentExistsError, AgentNotFoundError, ReadOnlyAgentError
from sutazai_agents.registry import Agent, Page, Status, merge, select, status_of
from sutazai_agents.store import AgentStore


class FileSource(Protocol):
    @property
    def agents(self) -> Mapping[str, Agent]: ...


class ServedModels(Protocol):
    async def served(self) -> frozenset[str] | None: ...


class AgentRegistry:
    def __init__(self, files: FileSource, store: AgentStore, models: ServedModels) -> None:
        self._files = files
        self._store = store
        self._models = models

    async def list(self, *, capability: str = "", query: str = "", limit: int = 0, offset: int = 0) -> Page:
        return select(merge(self._files.agents, await self._store.list()).values(),
                      capability=capability, query=query, limit=limit, offset=offset)

    async def get(self, agent_id: str) -> Agent:
        agent = self._files.agents.get(agent_id) or await self._store.get(agent_id)
        if agent is None:
            raise AgentNotFoundError(agent_id)
        return agent

    async def create(self, definition: AgentDefinition, created_by: str) -> Agent:
        if definition.id in self._files.agents:
            raise AgentExistsError(definition.id, "file")
        return await self._store.create(definition, created_by)

    async def update(self, definition: AgentDefinition) -> Agent:
        if definition.id in self._files.agents:
            raise ReadOnlyAgentError(definition.id)
        return await self._store.update(definition)

    async def delete(self, agent_id: str) -> None:
        if agent_id in self._files.agents:
            raise ReadOnlyAgentError(agent_id)
        if not await self._store.delete(agent_id):
            raise AgentNotFoundError(agent_id)

    async def statuses(self) -> StatusOf:
        return StatusOf(await self._models.served())


class StatusOf:
    """The status of each agent against one reading of the served models."""

    def __init__(self, served: frozenset[str] | None) -> None:
        self.served = served

    def __call__(self, agent: Agent) -> Status:
        return status_of(agent.definition.model, self.served)
