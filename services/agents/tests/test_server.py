"""The AgentService served for real on a free port, with its store in a scratch schema, its files in a
temporary folder, and a small real ChatService answering ListModels (or not) for the status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai.common.v1 import common_pb2
from sutazai_agents.config import Settings
from sutazai_agents.files import FileAgents
from sutazai_agents.models import ModelCatalog
from sutazai_agents.server import SERVICE, AgentServicer
from sutazai_agents.service import AgentRegistry
from sutazai_agents.store import AgentStore
from sutazai_runtime.grpc_client import open_channel
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.identity import testing

pytestmark = pytest.mark.timeout(60)



def ADMIN() -> tuple[tuple[str, str], ...]:
    return testing.metadata("admin-1", admin=True)


def USER() -> tuple[tuple[str, str], ...]:
    return testing.metadata("user-1")


class _Chat(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self) -> None:
        self.models: list[chat_pb2.ModelInfo] | None = [
            chat_pb2.ModelInfo(name="SmolLM2-135M-Instruct", backend="local", aliases=["tinyllama"])
        ]
        self.calls = 0

    async def ListModels(self, request: object, context: grpc.aio.ServicerContext) -> chat_pb2.ListModelsResponse:
        self.calls += 1
        if self.models is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not yet")
        return chat_pb2.ListModelsResponse(models=self.models)


@dataclass
class Running:
    stub: agents_pb2_grpc.AgentServiceStub
    chat: _Chat
    folder: Path


@contextlib.asynccontextmanager
async def running(store: AgentStore, folder: Path, *, chat_up: bool = True) -> AsyncIterator[Running]:
    chat = _Chat()
    chat_server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(chat, chat_server)
    chat_port = chat_server.add_insecure_port("127.0.0.1:0")
    if chat_up:
        await chat_server.start()
    settings = Settings(grpc_port=0, metrics_port=0, dir=folder, chat_addr=f"127.0.0.1:{chat_port}")
    chat_channel = open_channel(settings.chat_addr)
    files = FileAgents(settings.dir)
    files.load_all()
    # No cache of failures, and a 0.2 s cache of answers, so that the test sees changes at once.
    models = ModelCatalog(chat_channel, timeout_s=0.5, ttl_s=0.2, failure_ttl_s=0)
    servicer = AgentServicer(AgentRegistry(files, store, models))
    stop, port = asyncio.Event(), []
    task = asyncio.create_task(serve(
        GrpcService(
            name="agents", settings=settings,
            register=[lambda s: agents_pb2_grpc.add_AgentServiceServicer_to_server(servicer, s)],
            service_names=[SERVICE.full_name], background=[files.watch],
        ),
        stop=stop, bound_port=port,
    ))
    while not port:  # noqa: ASYNC110 - serve() reports its port through the list
        await asyncio.sleep(0.01)
    channel = open_channel(f"127.0.0.1:{port[0]}", default_timeout_s=5)
    try:
        yield Running(agents_pb2_grpc.AgentServiceStub(channel), chat, folder)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await channel.close()
        await chat_channel.close()
        await chat_server.stop(None)


def write(folder: Path, name: str, capabilities: str = "text", model: str = "tinyllama") -> None:
    (folder / f"{name}.md").write_text(
        f"---\nname: {name}\ndescription: the {name} agent\nmodel: {model}\ncapabilities: {capabilities}\n---\n"
        f"You are {name}.\n"
    )


def new_agent(agent_id: str = "custom", **fields: object) -> agents_pb2.Agent:
    base: dict[str, object] = {"id": agent_id, "name": "Custom", "description": "made over the API",
                               "system_prompt": "You are custom.", "capabilities": ["custom", "text"]}
    return agents_pb2.Agent(**{**base, **fields})


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path, "summarizer", "summarization, text")
    write(tmp_path, "sql-helper", "sql, code")
    return tmp_path


async def test_calls_need_an_identity_and_writes_need_admin(store: AgentStore, folder: Path) -> None:
    async with running(store, folder) as r:
        assert await code_of(r.stub.ListAgents(agents_pb2.ListAgentsRequest())) == grpc.StatusCode.UNAUTHENTICATED
        create = r.stub.CreateAgent(agents_pb2.CreateAgentRequest(agent=new_agent()), metadata=USER())
        assert await code_of(create) == grpc.StatusCode.PERMISSION_DENIED
        delete = r.stub.DeleteAgent(agents_pb2.DeleteAgentRequest(id="summarizer"), metadata=USER())
        assert await code_of(delete) == grpc.StatusCode.PERMISSION_DENIED
        assert await store.list() == []


async def test_list_merges_files_and_stored_with_filter_search_and_paging(store: AgentStore, folder: Path) -> None:
    async with running(store, folder) as r:
        created = await r.stub.CreateAgent(agents_pb2.CreateAgentRequest(agent=new_agent()), metadata=ADMIN())
        assert created.source == "api" and created.model == "tinyllama" and created.status == "active"

        everything = await r.stub.ListAgents(agents_pb2.ListAgentsRequest(), metadata=USER())
        assert [a.id for a in everything.agents] == ["custom", "sql-helper", "summarizer"]
        assert [a.source for a in everything.agents] == ["api", "file", "file"]
        assert everything.page.total == 3 and everything.page.limit == 50

        text = await r.stub.ListAgents(agents_pb2.ListAgentsRequest(capability="TEXT"), metadata=USER())
        assert [a.id for a in text.agents] == ["custom", "summarizer"]
        found = await r.stub.ListAgents(agents_pb2.ListAgentsRequest(query="the sql"), metadata=USER())
        assert [a.id for a in found.agents] == ["sql-helper"]

        page = common_pb2.PageRequest(limit=1, offset=1)
        second = await r.stub.ListAgents(agents_pb2.ListAgentsRequest(page=page), metadata=USER())
        assert [a.id for a in second.agents] == ["sql-helper"] and second.page.total == 3
        bad = r.stub.ListAgents(agents_pb2.ListAgentsRequest(page=common_pb2.PageRequest(limit=-1)), metadata=USER())
        assert await code_of(bad) == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_returns_every_field_or_not_found(store: AgentStore, folder: Path) -> None:
    async with running(store, folder) as r:
        agent = await r.stub.GetAgent(agents_pb2.GetAgentRequest(id="summarizer"), metadata=USER())
        assert agent.system_prompt == "You are summarizer."
        assert list(agent.capabilities) == ["summarization", "text"]
        assert agent.source == "file" and agent.updated_at.seconds > 0
        assert not agent.HasField("temperature")
        missing = r.stub.GetAgent(agents_pb2.GetAgentRequest(id="nobody"), metadata=USER())
        assert await code_of(missing) == grpc.StatusCode.NOT_FOUND


async def test_create_validates_and_refuses_taken_ids(store: AgentStore, folder: Path) -> None:
    async with running(store, folder) as r:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await r.stub.CreateAgent(
                agents_pb2.CreateAgentRequest(agent=new_agent("Bad Id", temperature=5)), metadata=ADMIN()
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "id:" in (caught.value.details() or "") and "temperature:" in (caught.value.details() or "")
        taken_by_file = r.stub.CreateAgent(agents_pb2.CreateAgentRequest(agent=new_agent("summarizer")),
                                           metadata=ADMIN())
        assert await code_of(taken_by_file) == grpc.StatusCode.ALREADY_EXISTS
        await r.stub.CreateAgent(agents_pb2.CreateAgentRequest(agent=new_agent(temperature=0.5)), metadata=ADMIN())
        again = r.stub.CreateAgent(agents_pb2.CreateAgentRequest(agent=new_agent()), metadata=ADMIN())
        assert await code_of(again) == grpc.StatusCode.ALREADY_EXISTS
        assert [a.id for a in await store.list()] == ["custom"]
        stored = await store.get("custom")
        assert stored is not None and stored.definition.temperature == 0.5


async def test_file_agents_are_read_only_and_stored_ones_editable(store: AgentStore, folder: Path) -> None:
    async with running(store, folder) as r:
        update_file = r.stub.UpdateAgent(agents_pb2.UpdateAgentRequest(agent=new_agent("summarizer")), metadata=ADMIN())
        assert await code_of(update_file) == grpc.StatusCode.FAILED_PRECONDITION
        delete_file = r.stub.DeleteAgent(agents_pb2.DeleteAgentRequest(id="summarizer"), metadata=ADMIN())
        assert await code_of(delete_file) == grpc.StatusCode.FAILED_PRECONDITION
        update_missing = r.stub.UpdateAgent(agents_pb2.UpdateAgentRequest(agent=new_agent("ghost")), metadata=ADMIN())
        assert await code_of(update_missing) == grpc.StatusCode.NOT_FOUND

        await r.stub.CreateAgent(agents_pb2.CreateAgentRequest(agent=new_agent()), metadata=ADMIN())
        updated = await r.stub.UpdateAgent(
            agents_pb2.UpdateAgentRequest(agent=new_agent(description="better", max_tokens=64)), metadata=ADMIN()
        )
        assert updated.description == "better" and updated.max_tokens == 64
        bad = r.stub.UpdateAgent(agents_pb2.UpdateAgentRequest(agent=new_agent(name="")), metadata=ADMIN())
        assert await code_of(bad) == grpc.StatusCode.INVALID_ARGUMENT
        assert (await store.get("custom")).definition.description == "better"  # type: ignore[union-attr]

        deleted = await r.stub.DeleteAgent(agents_pb2.DeleteAgentRequest(id="custom"), metadata=ADMIN())
        assert deleted.deleted
        gone = r.stub.DeleteAgent(agents_pb2.DeleteAgentRequest(id="custom"), metadata=ADMIN())
        assert await code_of(gone) == grpc.StatusCode.NOT_FOUND


async def test_status_follows_the_chat_service(store: AgentStore, folder: Path) -> None:
    write(folder, "big-model", model="llama3:70b")
    async with running(store, folder) as r:
        async def statuses() -> dict[str, str]:
            reply = await r.stub.ListAgents(agents_pb2.ListAgentsRequest(), metadata=USER())
            return {a.id: a.status for a in reply.agents}

        assert await statuses() == {"big-model": "unavailable", "sql-helper": "active", "summarizer": "active"}
        calls = r.chat.calls
        await statuses()
        assert r.chat.calls == calls  # answered from the cache
        r.chat.models = None  # chat answers UNIMPLEMENTED
        async with asyncio.timeout(5):  # once the cached answer expires
            while set((await statuses()).values()) != {"unknown"}:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def test_status_is_unknown_while_chat_is_unreachable(store: AgentStore, folder: Path) -> None:
    async with running(store, folder, chat_up=False) as r:
        reply = await r.stub.ListAgents(agents_pb2.ListAgentsRequest(), metadata=USER())
        assert {a.status for a in reply.agents} == {"unknown"}


async def test_a_new_file_is_served_without_restart(store: AgentStore, folder: Path) -> None:
    async with running(store, folder) as r:
        async with asyncio.timeout(5):
            while True:
                # Written again until served: inotify misses a change made before the watcher subscribed.
                write(folder, "translator", "translation")
                try:
                    agent = await r.stub.GetAgent(agents_pb2.GetAgentRequest(id="translator"), metadata=USER())
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)
        assert agent.source == "file"
