"""The task worker's memory hook (``sutazai_tasks.memory_context``) against the real memory service."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc
from sutazai.agents.v1 import agents_pb2
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_runtime.identity import testing
from sutazai_tasks.memory_context import MemoryContext, Recall, with_recall


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
    recall = await context.recall("What is my favourite colour?", "assistant", lambda: testing.metadata(user))
    contents = [content for _, content in recall.memories]
    assert contents[0] == "The user's favourite colour is teal."
    assert len(contents) == 2 and all("magenta" not in c for c in contents)
    prompt = recall.system_prompt("You are a helpful assistant.")
    assert prompt.startswith("You are a helpful assistant.") and "- The user's favourite colour is teal." in prompt
    assert recall.result_fields() == {"memories_used": [i for i, _ in recall.memories]}


async def test_remember_stores_the_answer_in_the_user_and_agent_scope(memory: Any, user: str) -> None:
    context = MemoryContext(memory.channel)

    def metadata() -> tuple[tuple[str, str], ...]:
        return testing.metadata(user)

    stored = await context.remember("The meeting moved to 3 pm.", "assistant", "task-1", metadata)
    got = await memory.client(user).GetMemory(m.GetMemoryRequest(id=stored["memory_stored"]))
    assert got.scope.agent_id == "assistant" and json.loads(got.metadata_json)["task_id"] == "task-1"
    again = await context.remember("The meeting moved to 3 pm.", "assistant", "task-2", metadata)
    assert again["memory_stored"] == stored["memory_stored"]  # the same answer twice is one memory


async def test_an_unreachable_memory_service_does_not_fail_the_task() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # nothing listens on the discard port
    try:
        recall = await MemoryContext(channel, timeout_s=1).recall("anything", "assistant",
                                                                  lambda: testing.metadata("u"))
    finally:
        await channel.close()
    assert recall.memories == [] and recall.error.startswith("UNAVAILABLE")
    assert recall.system_prompt("base") == "base"
    assert Recall().result_fields() == {"memories_used": []}


async def test_the_tool_loop_gets_the_same_recall_and_its_result_says_which_memories(
        memory: Any, user: str) -> None:
    """An agent with ``memory: true`` and tools: the definition handed to the tool loop (``agent_run``) carries
    the recalled memories in its system prompt; its result gets ``memories_used`` and, with ``remember``,
    the answer stored. The original definition is not changed."""
    await memory.client(user).AddMemories(m.AddMemoriesRequest(items=[
        m.MemoryInput(content="The user's locker number is 4242.", scope=m.Scope(agent_id="tool-agent"))]))
    context = MemoryContext(memory.channel)
    def metadata() -> tuple[tuple[str, str], ...]:
        return testing.metadata(user)

    agent = agents_pb2.Agent(id="tool-agent", system_prompt="You use tools.", memory=True, tools=["counter/count"])
    recall = await context.recall("What is my locker number?", agent.id, metadata)
    seen = with_recall(agent, recall)
    assert "- The user's locker number is 4242." in seen.system_prompt and list(seen.tools) == ["counter/count"]
    assert agent.system_prompt == "You use tools."
    assert with_recall(agent, Recall()) is agent

    @dataclass
    class Task:  # the two things ``finish`` reads of a task row
        id: str
        agent_id: str
        payload_: dict[str, Any]

        def payload(self) -> dict[str, Any]:
            return self.payload_

    ran = {"output": "Your locker is 4242.", "agent_id": agent.id, "steps": []}
    done = await context.finish(ran, recall, Task("t-1", agent.id, {"remember": True}), metadata)
    assert done["memories_used"] == [i for i, _ in recall.memories] and done["memories_used"]
    stored = await memory.client(user).GetMemory(m.GetMemoryRequest(id=done["memory_stored"]))
    assert stored.content == "Your locker is 4242." and stored.scope.agent_id == "tool-agent"
    assert done["steps"] == [] and "memory_stored" not in await context.finish(ran, recall, Task(
        "t-2", agent.id, {}), metadata)
