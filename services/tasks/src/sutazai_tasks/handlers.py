"""What a task does, by type. A handler gets the task and a ``progress`` callback and returns a
JSON-serialisable result; it raises ``PermanentError`` for failures a retry cannot fix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.identity import Identity
from sutazai_runtime.resilience.upstream import Upstream, stub_of

from sutazai_tasks.errors import PermanentError
from sutazai_tasks.model import TaskRow

Progress = Callable[[str], Awaitable[None]]
Handler = Callable[[TaskRow, Progress], Awaitable[Any]]

# gRPC codes that a later attempt may not see again.
_RETRYABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
})


async def echo(task: TaskRow, progress: Progress) -> Any:
    """Returns its payload and calls no model: for health checks and benchmarks."""
    return task.payload


class AgentRunner:
    """Runs an agent: its definition from ``agents``, its prompt through ``chat``, tokens as progress."""

    def __init__(self, agents: grpc.aio.Channel | Upstream, chat: grpc.aio.Channel | Upstream) -> None:
        self._agents = stub_of(agents, agents_pb2_grpc.AgentServiceStub)
        self._chat = stub_of(chat, chat_pb2_grpc.ChatServiceStub)

    async def __call__(self, task: TaskRow, progress: Progress) -> Any:
        metadata = Identity(task.owner_id).to_metadata()
        try:
            agent = await self._agents.GetAgent(agents_pb2.GetAgentRequest(id=task.agent_id or ""),
                                                metadata=metadata, timeout=10)
            request = chat_pb2.ChatRequest(
                messages=[chat_pb2.Message(role="user", content=str(task.payload["input"]))],
                model=agent.model, system=agent.system_prompt, agent_id=agent.id, use_cache=False,
            )
            if agent.HasField("temperature"):
                request.temperature = agent.temperature
            if agent.HasField("max_tokens"):
                request.max_tokens = agent.max_tokens
            parts: list[str] = []
            done: chat_pb2.ChatResponse | None = None
            async for chunk in self._chat.ChatStream(request, metadata=metadata, timeout=task.timeout_s):
                if chunk.HasField("done"):
                    done = chunk.done
                elif chunk.token:
                    parts.append(chunk.token)
                    await progress(chunk.token)
        except grpc.aio.AioRpcError as exc:
            message = f"{exc.code().name}: {exc.details()}"
            if exc.code() in _RETRYABLE_CODES:
                raise ConnectionError(message) from exc
            raise PermanentError(message) from exc
        result: dict[str, Any] = {"output": "".join(parts), "agent_id": agent.id, "model": agent.model}
        if done is not None:
            result.update(model=done.model or agent.model, backend=done.backend,
                          usage={"prompt_tokens": done.usage.prompt_tokens,
                                 "completion_tokens": done.usage.completion_tokens})
        return result
