"""The memory tools of agent runs: ``search_memory`` and ``store_memory``, calls to the memory service's
gRPC API in the scope of the task: its owner (the user in the call's identity metadata) and its agent
(``Scope.agent_id``). A run can neither read nor write another user's or another agent's memories.

``store_memory`` is safe to run again (a run resumed after a crash may repeat a call whose result was not
committed): the memory service de-duplicates by scope and content, so the same fact is stored once and the
second call answers the same id with ``event: duplicate``.

Bad arguments are an error result the model reads (nothing is sent); so is a memory service that fails."""

from __future__ import annotations

import json
from typing import Any

import grpc
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai_runtime.resilience.upstream import Upstream, stub_of

from sutazai_tasks.model import CallMetadata, TaskRow

MAX_QUERY_CHARS = 2_000
MAX_CONTENT_CHARS = 32_000  # the memory service's own limit on one memory
DEFAULT_LIMIT, MAX_LIMIT = 5, 20
MAX_HIT_CHARS = 1_000  # per memory in a search result (the model's context is small)

SEARCH_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "what to look for"},
                   "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
    "required": ["query"],
}
STORE_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"content": {"type": "string", "description": "the fact to remember, as one sentence"}},
    "required": ["content"],
}


class MemoryTools:
    def __init__(self, memory: Upstream | grpc.aio.Channel) -> None:
        self._stub = stub_of(memory, memory_pb2_grpc.MemoryServiceStub)

    async def search(self, arguments: dict[str, Any], task: TaskRow, metadata: CallMetadata,
                     timeout_s: float) -> tuple[str, bool]:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return "search_memory needs a non-empty string 'query'", True
        limit = arguments.get("limit", DEFAULT_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            return f"search_memory: 'limit' must be an integer from 1 to {MAX_LIMIT}", True
        reply = await self._stub.SearchMemories(
            memory_pb2.SearchMemoriesRequest(query=query.strip()[:MAX_QUERY_CHARS], limit=limit,
                                             scope=memory_pb2.Scope(agent_id=task.agent_id or "")),
            metadata=metadata(), timeout=timeout_s)
        hits = [{"id": h.memory.id, "content": h.memory.content[:MAX_HIT_CHARS], "score": round(h.score, 4)}
                for h in reply.results]
        return json.dumps(hits, ensure_ascii=False), False

    async def store(self, arguments: dict[str, Any], task: TaskRow, metadata: CallMetadata,
                    timeout_s: float) -> tuple[str, bool]:
        content = arguments.get("content")
        if not isinstance(content, str) or not content.strip():
            return "store_memory needs a non-empty string 'content'", True
        if len(content) > MAX_CONTENT_CHARS:
            return f"store_memory: 'content' is longer than {MAX_CONTENT_CHARS} characters", True
        reply = await self._stub.AddMemories(
            memory_pb2.AddMemoriesRequest(items=[memory_pb2.MemoryInput(
                content=content.strip(), scope=memory_pb2.Scope(agent_id=task.agent_id or ""))]),
            metadata=metadata(), timeout=timeout_s)
        if not reply.results:
            return "store_memory: the memory service stored nothing", True
        result = reply.results[0]
        if result.event == "skipped":
            return f"store_memory: not stored: {result.reason}", True
        return json.dumps({"id": result.memory.id, "event": result.event}), False
