"""The store of API-created agents, against the real PostgreSQL (a scratch schema per test)."""

import asyncpg
import pytest
from sutazai_agents.definitions import validate_definition
from sutazai_agents.errors import AgentExistsError, AgentNotFoundError
from sutazai_agents.store import AgentStore


def definition(agent_id: str = "helper", **fields: object):  # type: ignore[no-untyped-def]
    data = {"id": agent_id, "name": "Helper", "description": "helps", "system_prompt": "You help.",
            "capabilities": ["text"], "temperature": 0.3, **fields}
    return validate_definition(data)


async def test_create_get_list_roundtrip_every_field(store: AgentStore) -> None:
    created = await store.create(definition(tools=["a", "b"], max_tokens=256, color="red"), "admin-1")
    assert created.source == "api" and created.updated_at is not None
    fetched = await store.get("helper")
    assert fetched is not None and fetched.definition == created.definition
    assert fetched.definition.tools == ("a", "b") and fetched.definition.max_tokens == 256
    await store.create(definition("another"), "admin-1")
    assert [a.id for a in await store.list()] == ["another", "helper"]
    assert await store.get("nobody") is None


async def test_the_creator_is_recorded(store: AgentStore, pg_pool: asyncpg.Pool, scratch_schema: str) -> None:
    await store.create(definition(), "admin-7")
    assert await pg_pool.fetchval(f'SELECT created_by FROM "{scratch_schema}".agents') == "admin-7"


async def test_a_taken_id_is_refused_and_the_first_agent_kept(store: AgentStore) -> None:
    await store.create(definition(description="first"), "a")
    with pytest.raises(AgentExistsError):
        await store.create(definition(description="second"), "b")
    agent = await store.get("helper")
    assert agent is not None and agent.definition.description == "first"


async def test_update_replaces_the_definition_and_moves_updated_at(store: AgentStore) -> None:
    created = await store.create(definition(), "a")
    updated = await store.update(definition(description="better", temperature=None))
    assert updated.definition.description == "better" and updated.definition.temperature is None
    assert updated.updated_at > created.updated_at
    with pytest.raises(AgentNotFoundError):
        await store.update(definition("ghost"))


async def test_delete_removes_once(store: AgentStore) -> None:
    await store.create(definition(), "a")
    assert await store.delete("helper") is True
    assert await store.delete("helper") is False
    assert await store.get("helper") is None
