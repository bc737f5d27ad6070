"""The agent tools ``search_memory`` and ``store_memory`` (``sutazai_tasks.memory_tools``, called through the
worker's ``Toolbox``) against the real memory service: the task owner's and the task agent's scope only,
bad arguments answered as tool errors with nothing stored, a memory service that does not answer an error
result, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sutazai.common.v1 import common_pb2
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_runtime.identity.testing import metadata as signed_metadata
from sutazai_tasks.memory_tools import MemoryTools
from sutazai_tasks.model import TaskRow
from sutazai_tasks.tools import PLATFORM_TOOLS, Toolbox

SEARCH, STORE = PLATFORM_TOOLS["search_memory"], PLATFORM_TOOLS["store_memory"]
_NOWHERE = "127.0.0.1:9"  # nothing listens on the discard port


def _task(owner: str, agent_id: str) -> TaskRow:
    return TaskRow(id="00000000-0000-0000-0000-000000000001", owner_id=owner, task_type="agent",
                   payload_json='{"input": "x"}', priority=0, agent_id=agent_id, status="running", attempts=1,
                   max_attempts=3, timeout_s=60, result_json=None, error=None, idempotency_key=None, parent_id=None,
                   created_at=datetime.now(UTC), started_at=None, finished_at=None, completions=0, replays=0)


@pytest.fixture
async def toolbox(memory: Any) -> Any:
    # Agents and tasks are not called by the memory tools: channels to nowhere (opened lazily, never used).
    unused = grpc.aio.insecure_channel(_NOWHERE)
    yield Toolbox(unused, unused, None, None, MemoryTools(memory.channel))  # type: ignore[arg-type]
    await unused.close()


async def _run(toolbox: Toolbox, spec: Any, arguments: dict[str, Any], owner: str, agent: str) -> Any:
    return await toolbox.call(spec, arguments, _task(owner, agent), "call_0_0", (lambda: signed_metadata(owner)), 30)


async def test_store_then_search_in_the_owner_and_agent_scope_only(memory: Any, toolbox: Toolbox, user: str,
                                                                   other: str) -> None:
    fact = "The user's locker code is 4417."
    stored = await _run(toolbox, STORE, {"content": fact}, user, "assistant")
    assert not stored.is_error, stored.content
    first = json.loads(stored.content)
    assert first["event"] == "created"
    saved = await memory.client(user).GetMemory(m.GetMemoryRequest(id=first["id"]))
    assert saved.content == fact and saved.user_id == user and saved.scope.agent_id == "assistant"
    # A resumed run that repeats the call stores nothing new (at-least-once is safe here).
    again = await _run(toolbox, STORE, {"content": fact}, user, "assistant")
    assert json.loads(again.content) == {"id": first["id"], "event": "duplicate"}

    found = await _run(toolbox, SEARCH, {"query": "What is the locker code?", "limit": 3}, user, "assistant")
    assert not found.is_error, found.content
    hits = json.loads(found.content)
    assert hits[0]["id"] == first["id"] and hits[0]["content"] == fact and len(hits) <= 3
    # Neither another user nor another agent of the same user sees it.
    for owner, agent in ((other, "assistant"), (user, "other-agent")):
        elsewhere = await _run(toolbox, SEARCH, {"query": "What is the locker code?"}, owner, agent)
        assert not elsewhere.is_error and first["id"] not in {h["id"] for h in json.loads(elsewhere.content)}


@pytest.mark.parametrize(("spec", "arguments", "says"), [
    (SEARCH, {}, "non-empty string 'query'"),
    (SEARCH, {"query": "   "}, "non-empty string 'query'"),
    (SEARCH, {"query": "x", "limit": 0}, "'limit' must be an integer from 1 to 20"),
    (SEARCH, {"query": "x", "limit": "3"}, "'limit' must be an integer"),
    (SEARCH, {"query": "x", "limit": True}, "'limit' must be an integer"),
    (STORE, {}, "non-empty string 'content'"),
    (STORE, {"content": 42}, "non-empty string 'content'"),
    (STORE, {"content": "a" * 32_001}, "longer than 32000 characters"),
])
async def test_bad_arguments_are_an_error_result_and_store_nothing(memory: Any, toolbox: Toolbox, user: str,
                                                                   spec: Any, arguments: dict[str, Any],
                                                                   says: str) -> None:
    outcome = await _run(toolbox, spec, arguments, user, "assistant")
    assert outcome.is_error and says in outcome.content
    listed = await memory.client(user).ListMemories(m.ListMemoriesRequest(page=common_pb2.PageRequest(limit=10)))
    assert list(listed.memories) == []


async def test_a_memory_service_that_does_not_answer_is_an_error_result() -> None:
    channel = grpc.aio.insecure_channel(_NOWHERE)
    try:
        toolbox = Toolbox(channel, channel, None, None, MemoryTools(channel))  # type: ignore[arg-type]
        for spec, arguments in ((SEARCH, {"query": "anything"}), (STORE, {"content": "a fact"})):
            outcome = await toolbox.call(spec, arguments, _task("u", "a"), "c", (lambda: signed_metadata("u")), 2)
            assert outcome.is_error and "UNAVAILABLE" in outcome.content, outcome.content
        without = Toolbox(channel, channel, None, None)  # type: ignore[arg-type]
        outcome = await without.call(STORE, {"content": "a fact"}, _task("u", "a"), "c",
                                     lambda: signed_metadata("u"), 2)
        assert outcome.is_error and "no memory service" in outcome.content
    finally:
        await channel.close()
