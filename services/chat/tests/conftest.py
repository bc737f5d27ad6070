"""Fixtures on real servers: llama.cpp model servers started on free ports from the model server's
virtualenv, the session's Redis (``redis_url``, root conftest) under a key prefix of each test's own,
and the chat servicer served over gRPC on a free port."""

from __future__ import annotations

import contextlib
import functools
import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis.asyncio as redis
from sutazai.chat.v1 import chat_pb2_grpc
from sutazai_chat.__main__ import build_service, build_servicer
from sutazai_chat.config import Settings
from sutazai_chat.service import ChatService
from sutazai_runtime.identity import IdentityInterceptor
from sutazai_stack import embedded
from sutazai_stack.config import model_server_python as recorded_model_python
from sutazai_stack.ports import free_port
from sutazai_stack.processes import ManagedProcess

REPO = Path(__file__).resolve().parents[3]
MODEL = embedded.MODEL_ALIAS


def model_python() -> Path:
    return recorded_model_python(REPO)


@dataclass
class LlamaServer:
    """One llama.cpp server; ``requests()`` counts the chat completions it received, from its own log."""

    home: Path
    port: int
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "model_server.log"

    def start(self) -> None:
        self.process = embedded.model_server(self.home, self.port, model_python())
        self.process.argv[self.process.argv.index("--n_threads") + 1] = "1"  # two servers share 2 cores
        self.process.start()
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as response:
                    json.load(response)
                    return
            except OSError:
                if not self.process.running() or time.monotonic() > deadline:
                    raise RuntimeError(f"llama.cpp server did not start:\n{self.process.tail()}") from None
                time.sleep(0.2)

    def kill(self) -> None:
        assert self.process and self.process.proc
        self.process.proc.kill()
        self.process.proc.wait(10)

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout_s=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self) -> int:
        return self.log().count("POST /v1/chat/completions")


@pytest.fixture(scope="session")
def llama_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LlamaServer, LlamaServer]]:
    servers = (LlamaServer(tmp_path_factory.mktemp("llama-a"), free_port()),
               LlamaServer(tmp_path_factory.mktemp("llama-b"), free_port()))
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def ensure_up(llama_pair: tuple[LlamaServer, LlamaServer]) -> tuple[LlamaServer, LlamaServer]:
    """Both servers running (a test before may have killed one)."""
    for server in llama_pair:
        if server.process is None or not server.process.running():
            server.start()
    return llama_pair


@dataclass
class ChatHarness:
    service: ChatService
    stub: chat_pb2_grpc.ChatServiceStub
    settings: Settings


@contextlib.asynccontextmanager
async def chat_server(
    redis_url: str, backends: list[dict[str, object]], **overrides: object
) -> AsyncIterator[ChatHarness]:
    """The chat servicer on a free port over the given backends, with its own cache namespace."""
    settings = Settings(grpc_port=0, metrics_port=0, backends=json.dumps(backends),
                        cache_prefix=f"test:{uuid.uuid4().hex}:", redis_url=redis_url, **overrides)
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    service = build_service(settings, client)
    await service.refresh()
    # as serve() does: identity proofs verified before the servicer
    server = grpc.aio.server(interceptors=[IdentityInterceptor(settings.identity.verifier())])
    chat_pb2_grpc.add_ChatServiceServicer_to_server(build_servicer(settings, service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield ChatHarness(service, chat_pb2_grpc.ChatServiceStub(channel), settings)
    finally:
        await channel.close()
        await server.stop(1)
        await service.cache.flush()
        for backend in service.router.backends:
            await backend.client.close()
        keys = [k async for k in client.scan_iter(match=settings.cache_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def backend(name: str, server: LlamaServer, **extra: object) -> dict[str, object]:
    return {"name": name, "kind": "openai", "url": server.url, **extra}


@pytest.fixture
def make_chat(redis_url: str):  # type: ignore[no-untyped-def]
    """``async with make_chat([backend, ...], **settings) as harness``."""
    return functools.partial(chat_server, redis_url)


@pytest.fixture
def spec():  # type: ignore[no-untyped-def]
    """``spec(name, server, **extra)``: one backend entry of the configuration."""
    return backend
