"""Fixtures on real servers: the local embeddings server (all-MiniLM-L6-v2, from the model server's
virtualenv) started on a free port, the chat servicer in front of it, the machine's PostgreSQL (a schema
per session), Qdrant in local mode on a temporary folder, and the memory servicer over gRPC on a free
port. ``client(user)`` is a stub whose calls carry that user's identity."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as redis
from sutazai.chat.v1 import chat_pb2_grpc
from sutazai.memory.v1 import memory_pb2_grpc
from sutazai_chat.__main__ import build_service, build_servicer
from sutazai_chat.config import Settings as ChatSettings
from sutazai_memory.config import Settings
from sutazai_memory.document_events import DocumentEvents
from sutazai_memory.memory_store import init_connection
from sutazai_memory.wiring import Built, build, migrate
from sutazai_runtime.discovery import DiscoverySettings, open_registry
from sutazai_runtime.identity import IdentityInterceptor, testing
from sutazai_runtime.nats import connect_nats
from sutazai_stack import embedded
from sutazai_stack.config import model_server_python as recorded_model_python
from sutazai_stack.ports import free_port
from sutazai_stack.processes import ManagedProcess

REPO = Path(__file__).resolve().parents[3]


def model_python() -> Path:
    return recorded_model_python(REPO)


@pytest.fixture(scope="session")
def model_server_python() -> Path:
    return model_python()


def _wait_http(url: str, process: ManagedProcess, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                json.load(response)
                return
        except OSError:
            if not process.running() or time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not start:\n{process.tail()}") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def embeddings_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("embeddings")
    port = free_port()
    process = embedded.embeddings_server(home, port, model_python())
    process.start()
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop(timeout_s=5)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory, model_server_python: Path) -> Iterator[tuple[str, Path]]:
    """The local model (SmolLM2-135M, llama.cpp) for ``infer: true``; (url, its log, which counts requests).
    Started before any gRPC server of the session: a child forked while gRPC's threads run can die in gRPC's
    fork handlers before it execs."""
    home, port = tmp_path_factory.mktemp("llama"), free_port()
    process = embedded.model_server(home, port, model_server_python)
    process.argv[process.argv.index("--n_threads") + 1] = "1"
    process.start()
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}", home / "logs" / "model_server.log"
    finally:
        process.stop(timeout_s=5)


@pytest.fixture(scope="session")
async def chat_addr(embeddings_url: str, llama: tuple[str, Path], redis_url: str) -> AsyncIterator[str]:
    """The real chat servicer in front of the embeddings server and the local model."""
    backends = [{"name": "emb", "kind": "openai", "url": embeddings_url},
                {"name": "llm", "kind": "openai", "url": llama[0]}]
    settings = ChatSettings(grpc_port=0, metrics_port=0, redis_url=redis_url, backends=json.dumps(backends),
                            cache_prefix=f"test:{uuid.uuid4().hex}:")
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    service = build_service(settings, client)
    await service.refresh()
    # as serve() does: identity proofs verified before the servicer (memory forwards the caller's proof)
    server = grpc.aio.server(interceptors=[IdentityInterceptor(settings.identity.verifier())])
    chat_pb2_grpc.add_ChatServiceServicer_to_server(build_servicer(settings, service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(1)
        for backend in service.router.backends:
            await backend.client.close()
        keys = [k async for k in client.scan_iter(match=settings.cache_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@dataclass
class MemoryHarness:
    built: Built
    pool: asyncpg.Pool
    schema: str
    channel: grpc.aio.Channel
    settings: Settings
    address: str

    def client(self, user: str) -> Client:
        return Client(memory_pb2_grpc.MemoryServiceStub(self.channel), user)


@dataclass
class Client:
    """A stub whose every call carries ``user``'s identity (a proof fresh at each call)."""

    stub: memory_pb2_grpc.MemoryServiceStub
    user: str

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)

        async def call(request: Any, **kwargs: Any) -> Any:
            return await method(request, metadata=testing.metadata(self.user), timeout=60, **kwargs)

        return call


@pytest.fixture(scope="session")
async def memory(chat_addr: str, postgres_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[MemoryHarness]:
    schema = f"mem_{uuid.uuid4().hex[:10]}"
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=8, timeout=5, init=init_connection)
    assert pool is not None
    await migrate(pool, schema)
    settings = Settings(grpc_port=0, metrics_port=0, database_url=postgres_url, chat_addr=chat_addr,
                        data_dir=tmp_path_factory.mktemp("memory-data"), chunk_tokens=60, chunk_overlap=10)
    # chat through the balanced Upstream, as the service does (a static registry naming the test's chat)
    registry = await open_registry(DiscoverySettings(backend="static"), static_addresses={"chat": chat_addr})
    events = DocumentEvents(await connect_nats(nats_url, name="memory-tests"))
    built = await build(settings, pool, schema=schema, registry=registry, events=events)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)],
                             interceptors=[IdentityInterceptor(settings.identity.verifier())])
    memory_pb2_grpc.add_MemoryServiceServicer_to_server(built.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                        options=[("grpc.max_receive_message_length", 32 * 1024 * 1024)])
    try:
        yield MemoryHarness(built, pool, schema, channel, settings, f"127.0.0.1:{port}")
    finally:
        await channel.close()
        await server.stop(1)
        for cleanup in built.cleanups:
            await cleanup()
        await registry.close()
        await events.close()
        await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def other() -> str:
    return f"other-{uuid.uuid4().hex[:8]}"
