"""Memories through the gRPC servicer on the real engine (Qdrant Edge), PostgreSQL and embeddings."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_runtime.resilience.upstream import Upstream

MemoryHarness = Any  # the conftest fixture (importlib mode cannot import conftest)


def item(content: str, agent: str = "", **metadata: object) -> m.MemoryInput:
    return m.MemoryInput(content=content, metadata_json=json.dumps(metadata).encode(), scope=m.Scope(agent_id=agent))


async def add(client, *items: m.MemoryInput, infer: bool = False) -> m.AddMemoriesResponse:  # type: ignore[no-untyped-def]
    return await client.AddMemories(m.AddMemoriesRequest(items=list(items), infer=infer))


async def test_add_then_search_finds_by_meaning_and_by_identifier(memory: MemoryHarness, user: str) -> None:
    c = memory.client(user)
    reply = await add(c, item("The staging database password rotates every Monday at 09:00 UTC."),
                      item("Invoice INV-2024-0042 was paid by bank transfer on March 3."),
                      item("Maria prefers tea over coffee in the morning."))
    assert [r.event for r in reply.results] == ["created"] * 3
    assert reply.model_calls == 0
    # embeddings went through the balanced, protected upstream (not a channel of its own)
    assert isinstance(memory.built.chat, Upstream) and memory.built.chat.endpoints
    found = await c.SearchMemories(m.SearchMemoriesRequest(query="what does Maria like to drink?", limit=3))
    assert "tea" in found.results[0].memory.content
    found = await c.SearchMemories(m.SearchMemoriesRequest(query="INV-2024-0042", limit=1))
    assert found.results[0].memory.content.startswith("Invoice INV-2024-0042")
    dense = await c.SearchMemories(m.SearchMemoriesRequest(query="when is the credential changed", mode="dense",
                                                           limit=1))
    assert "password" in dense.results[0].memory.content


async def test_the_same_content_twice_is_one_memory_and_nothing_is_deleted(memory: MemoryHarness, user: str) -> None:
    c = memory.client(user)
    first = await add(c, item("The build server is called hal-9000."))
    second = await add(c, item("The build server is called hal-9000.", note="again"),
                       item("The build server is called hal-9000."))
    assert [r.event for r in second.results] == ["duplicate", "duplicate"]
    assert {r.memory.id for r in second.results} == {first.results[0].memory.id}
    listed = await c.ListMemories(m.ListMemoriesRequest())
    assert listed.page.total == 1
    # another scope (an agent) keeps its own copy
    scoped = await add(c, item("The build server is called hal-9000.", agent="ops"))
    assert scoped.results[0].event == "created"
    history = await c.MemoryHistory(m.MemoryHistoryRequest(id=first.results[0].memory.id))
    assert [h.event for h in history.changes] == ["ADD"]


async def test_update_re_embeds_and_history_records_every_change(memory: MemoryHarness, user: str) -> None:
    c = memory.client(user)
    created = (await add(c, item("The office is on the third floor.", room=3))).results[0].memory
    updated = await c.UpdateMemory(m.UpdateMemoryRequest(id=created.id, content="The office moved to Lisbon."))
    assert updated.content == "The office moved to Lisbon." and json.loads(updated.metadata_json) == {"room": 3}
    found = await c.SearchMemories(m.SearchMemoriesRequest(query="which city is the office in", limit=1,
                                                           mode="dense"))
    assert found.results[0].memory.id == created.id
    await c.UpdateMemory(m.UpdateMemoryRequest(id=created.id, metadata_json=b'{"room": 12}'))
    await c.DeleteMemory(m.DeleteMemoryRequest(id=created.id))
    history = await c.MemoryHistory(m.MemoryHistoryRequest(id=created.id))
    assert [h.event for h in history.changes] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert history.changes[1].old_content == "The office is on the third floor."
    assert history.changes[1].new_content == "The office moved to Lisbon."
    assert all(h.HasField("at") for h in history.changes)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.GetMemory(m.GetMemoryRequest(id=created.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    found = await c.SearchMemories(m.SearchMemoriesRequest(query="office Lisbon", limit=5))
    assert created.id not in {r.memory.id for r in found.results}


async def test_a_user_never_sees_finds_changes_or_deletes_another_users_memory(
        memory: MemoryHarness, user: str, other: str) -> None:
    mine, theirs = memory.client(user), memory.client(other)
    secret = (await add(theirs, item("The vault combination is 31-41-59, code ZEBRA-7731."))).results[0].memory
    await add(mine, item("My bicycle is blue."))
    for mode in ("hybrid", "dense", "keyword"):
        found = await mine.SearchMemories(m.SearchMemoriesRequest(query="vault combination ZEBRA-7731", limit=10,
                                                                  mode=mode))
        assert all(r.memory.user_id == user for r in found.results), mode
        assert secret.id not in {r.memory.id for r in found.results}
    for call, request in [
        (mine.GetMemory, m.GetMemoryRequest(id=secret.id)),
        (mine.UpdateMemory, m.UpdateMemoryRequest(id=secret.id, content="mine now")),
        (mine.DeleteMemory, m.DeleteMemoryRequest(id=secret.id)),
        (mine.MemoryHistory, m.MemoryHistoryRequest(id=secret.id)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await mine.ListMemories(m.ListMemoriesRequest())).page.total == 1
    still = await theirs.GetMemory(m.GetMemoryRequest(id=secret.id))
    assert still.content.startswith("The vault combination")


async def test_scope_and_metadata_filters_narrow_a_search(memory: MemoryHarness, user: str) -> None:
    c = memory.client(user)
    await add(c, item("Deploys happen on Tuesdays.", agent="ops", team="infra"),
              item("Deploys happen on Fridays.", agent="web", team="front"))
    ops = await c.SearchMemories(m.SearchMemoriesRequest(query="when are deploys", scope=m.Scope(agent_id="ops")))
    assert [r.memory.content for r in ops.results] == ["Deploys happen on Tuesdays."]
    front = await c.SearchMemories(m.SearchMemoriesRequest(query="when are deploys",
                                                           metadata_json=b'{"team": "front"}'))
    assert [r.memory.content for r in front.results] == ["Deploys happen on Fridays."]


@pytest.mark.parametrize("request_, detail", [
    (m.AddMemoriesRequest(), "items"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="   ")]), "content"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="x" * 32_001)]), "content"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="ok", scope=m.Scope(agent_id="a" * 200))]), "agent_id"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="ok", metadata_json=b"[1, 2]")]), "metadata"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="ok", metadata_json=b'{"a": NaN}')]), "metadata"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="ok", metadata_json=b'{"\\ud800": 1}')]), "metadata"),
    (m.AddMemoriesRequest(items=[m.MemoryInput(content="ok", metadata_json=b"{not json")]), "metadata"),
])
async def test_bad_adds_are_refused_and_change_nothing(memory: MemoryHarness, user: str,
                                                       request_: m.AddMemoriesRequest, detail: str) -> None:
    c = memory.client(user)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.AddMemories(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert detail in info.value.details()
    assert (await c.ListMemories(m.ListMemoriesRequest())).page.total == 0


@pytest.mark.parametrize("request_", [
    m.SearchMemoriesRequest(query=""),
    m.SearchMemoriesRequest(query="x", limit=101),
    m.SearchMemoriesRequest(query="x", mode="fuzzy"),
    m.SearchMemoriesRequest(query="x", threshold=2.0),
])
async def test_bad_searches_are_refused(memory: MemoryHarness, user: str, request_: m.SearchMemoriesRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await memory.client(user).SearchMemories(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_call_without_identity_is_unauthenticated(memory: MemoryHarness) -> None:
    from sutazai.memory.v1 import memory_pb2_grpc

    stub = memory_pb2_grpc.MemoryServiceStub(memory.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListMemories(m.ListMemoriesRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
