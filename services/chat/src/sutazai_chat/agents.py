"""The agents service, asked for an agent's system prompt and defaults when a chat names ``agent_id``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai_runtime.resilience.upstream import Upstream

from sutazai_chat.errors import AgentNotFoundError, AgentsUnavailableError, InvalidRequestError

TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class AgentProfile:
    system_prompt: str
    model: str
    temperature: float | None
    max_tokens: int | None


class AgentDirectory:
    def __init__(self, agents: Upstream) -> None:
        self._agents = agents
        self._stub = agents.stub(agents_pb2_grpc.AgentServiceStub)

    async def profile(self, agent_id: str, metadata: Sequence[tuple[str, str]]) -> AgentProfile:
        """The agent's prompt and defaults; the caller's identity goes along (agents scopes by owner)."""
        try:
            agent = await self._stub.GetAgent(agents_pb2.GetAgentRequest(id=agent_id), metadata=tuple(metadata),
                                              timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise AgentNotFoundError(f"agent {agent_id!r} does not exist") from exc
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
                              grpc.StatusCode.PERMISSION_DENIED):
                raise InvalidRequestError(f"agent {agent_id!r}: {exc.details()}") from exc
            raise AgentsUnavailableError(f"the agents service did not answer ({exc.code().name})") from exc
        return AgentProfile(
            system_prompt=agent.system_prompt, model=agent.model,
            temperature=agent.temperature if agent.HasField("temperature") else None,
            max_tokens=agent.max_tokens if agent.HasField("max_tokens") else None,
        )

    async def close(self) -> None:
        await self._agents.close()
