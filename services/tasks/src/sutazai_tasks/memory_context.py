"""Long-term memory for agents whose definition says ``memory: true``.

Before the model runs, the task's input is the query of a search over the memories of the task's user:
first those scoped to the agent, then the user's others, at most ``limit`` in all; they go into the
system prompt, most relevant first, and their ids into the result (``memories_used``). A payload with
``"remember": true`` stores the agent's answer as a memory in the user+agent scope (``memory_stored``).
A memory service that does not answer does not fail the task: the agent runs without memories and the
result says so (``memory_error``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc
from sutazai.agents.v1 import agents_pb2
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai_runtime.resilience.upstream import stub_of

from sutazai_tasks.model import CallMetadata

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2_000
MAX_MEMORY_CHARS = 1_000


@dataclass(slots=True)
class Recall:
    memories: list[tuple[str, str]] = field(default_factory=list)  # (id, content)
    error: str = ""

    def system_prompt(self, base: str) -> str:
        if not self.memories:
            return base
        lines = "\n".join(f"- {content[:MAX_MEMORY_CHARS]}" for _, content in self.memories)
        return (f"{base}\n\nWhat you remember about this user (most relevant first). Use it when it answers "
                f"the request:\n{lines}")

    def result_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"memories_used": [memory_id for memory_id, _ in self.memories]}
        if self.error:
            fields["memory_error"] = self.error
        return fields


def with_recall(agent: agents_pb2.Agent, recall: Recall | None) -> agents_pb2.Agent:
    """The agent as the model should see it: its system prompt with the recalled memories (a copy; the
    tool loop of ``agent_run`` takes the prompt from the definition it is given)."""
    if recall is None or not recall.memories:
        return agent
    copy = agents_pb2.Agent()
    copy.CopyFrom(agent)
    copy.system_prompt = recall.system_prompt(agent.system_prompt)
    return copy


class MemoryContext:
    def __init__(self, channel: grpc.aio.Channel, *, limit: int = 5, timeout_s: float = 10.0) -> None:
        self._stub = stub_of(channel, memory_pb2_grpc.MemoryServiceStub)
        self._limit = limit
        self._timeout_s = timeout_s

    async def recall(self, query: str, agent_id: str, metadata: CallMetadata) -> Recall:
        recall = Recall()
        query = query.strip()[:MAX_QUERY_CHARS]
        if not query:
            return recall
        seen: set[str] = set()
        try:
            for scope in (memory_pb2.Scope(agent_id=agent_id), memory_pb2.Scope()):
                reply = await self._stub.SearchMemories(
                    memory_pb2.SearchMemoriesRequest(query=query, limit=self._limit, scope=scope),
                    metadata=metadata(), timeout=self._timeout_s)
                for hit in reply.results:
                    if hit.memory.id not in seen and len(recall.memories) < self._limit:
                        seen.add(hit.memory.id)
                        recall.memories.append((hit.memory.id, hit.memory.content))
        except grpc.aio.AioRpcError as exc:
            recall.error = f"{exc.code().name}: {exc.details()}"
            log.warning("memory recall failed; the agent runs without memories", extra={"error": recall.error})
        return recall

    async def finish(self, result: dict[str, Any], recall: Recall, task: Any,
                     metadata: CallMetadata) -> dict[str, Any]:
        """The result with ``memories_used`` (and ``memory_error``), and, when the payload says
        ``"remember": true``, the answer stored as a memory (``memory_stored``). Both paths (one model call, or
        the tool loop) end here."""
        result = {**result, **recall.result_fields()}
        if task.payload().get("remember") is True and result.get("output"):
            result.update(await self.remember(str(result["output"]), str(result.get("agent_id") or task.agent_id),
                                              str(task.id), metadata))
        return result

    async def remember(self, content: str, agent_id: str, task_id: str,
                       metadata: CallMetadata) -> dict[str, Any]:
        if not content.strip():
            return {}
        meta = json.dumps({"source": "task", "task_id": task_id}).encode()
        request = memory_pb2.AddMemoriesRequest(items=[memory_pb2.MemoryInput(
            content=content[:32_000], metadata_json=meta, scope=memory_pb2.Scope(agent_id=agent_id))])
        try:
            reply = await self._stub.AddMemories(request, metadata=metadata(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            return {"memory_error": f"storing the result failed: {exc.code().name}: {exc.details()}"}
        return {"memory_stored": reply.results[0].memory.id} if reply.results else {}
