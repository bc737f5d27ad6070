"""The task worker's memory hook (``sutazai_tasks.memory_context``) against the real memory service."""

from __future__ import annotations

import json
from typing import Any

import grpc
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_runtime.identity import Identity
from sutazai_tasks.memory_context import MemoryContext, Recall


async def test_recall_puts_the_users_agent_memories_first_and_never_another_users(
        memory: Any, user: str, other: str) -> None:
    mine, theirs = memory.client(user), memory.client(other)
    await mine.AddMemories(m.AddMemoriesRequest(items=[
        m.MemoryInput(content="The user's favourite colour is teal.", scope=m.Scope(agent_id="assistant")),
        m.MemoryInput(content="The user's favourite colour used to be orange."),
        m.MemoryInput(content="The user's dog is called Biscuit.", scope=m.Scope(agent_id="other-agent")),
    ]))
    await theirs.AddMemories(m.AddMemoriesRequest(items=[
        m.MemoryInput(content="The user's favourite colour is magenta.", scope=m.Scope(agent_id="assistant"))]))
    context = MemoryContext(memory.channel, limit=2)
    recall = await context.recall("What is my favourite colour?", "assistant", Identity(user).to_metadata())
    contents = [content for _, content in recall.memories]
    assert contents[0] == "The user's favourite colour is teal."
    assert len(contents) == 2 and all("magenta" not in c for c in contents)
    prompt = recall.system_prompt("You are a helpful assistant.")
    assert prompt.startswith("You are a helpful assistant.") and "- The user's favourite colour is teal." in prompt
    assert recall.result_fields() == {"memories_used": [i for i, _ in recall.memories]}


async def test_remember_stores_the_answer_in_the_user_and_agent_scope(memory: Any, user: str) -> None:
    context = MemoryContext(memory.channel)
    metadata = Identity(user).to_metadata()
    stored = await context.remember("The meeting moved to 3 pm.", "assistant", "task-1", metadata)
    got = await memory.client(user).GetMemory(m.GetMemoryRequest(id=stored["memory_stored"]))
    assert got.scope.agent_id == "assistant" and json.loads(got.metadata_json)["task_id"] == "task-1"
    again = await context.remember("The meeting moved to 3 pm.", "assistant", "task-2", metadata)
    assert again["memory_stored"] == stored["memory_stored"]  # the same answer twice is one memory


async def test_an_unreachable_memory_service_does_not_fail_the_task() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # nothing listens on the discard port
    try:
        recall = await MemoryContext(channel, timeout_s=1).recall("anything", "assistant",
                                                                  Identity("u").to_metadata())
    finally:
        await channel.close()
    assert recall.memories == [] and recall.error.startswith("UNAVAILABLE")
    assert recall.system_prompt("base") == "base"
    assert Recall().result_fields() == {"memories_used": []}
