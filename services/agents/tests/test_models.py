"""The served-models cache against a real gRPC ChatService on a free port, with an injected clock."""

import grpc
import pytest
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_agents.models import ModelCatalog
from sutazai_runtime.grpc_client import open_channel

pytestmark = pytest.mark.timeout(30)


class _Chat(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def ListModels(self, request: object, context: grpc.aio.ServicerContext) -> chat_pb2.ListModelsResponse:
        self.calls += 1
        if self.fail:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "every backend is down")
        return chat_pb2.ListModelsResponse(models=[
            chat_pb2.ModelInfo(name="SmolLM2-135M", aliases=["TinyLlama", ""]),
            chat_pb2.ModelInfo(name="nomic-embed-text"),
        ])


async def test_answers_are_cached_failures_briefly_and_names_lower_cased() -> None:
    chat = _Chat()
    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(chat, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    now = [0.0]
    catalog = ModelCatalog(channel, ttl_s=10, failure_ttl_s=2, clock=lambda: now[0])
    try:
        assert await catalog.served() == frozenset({"smollm2-135m", "tinyllama", "nomic-embed-text"})
        now[0] = 9.9
        await catalog.served()
        assert chat.calls == 1  # still fresh

        chat.fail = True
        now[0] = 10.0
        assert await catalog.served() is None  # unknown, not a guess
        now[0] = 11.9
        assert await catalog.served() is None and chat.calls == 2  # the failure is cached too, briefly

        chat.fail = False
        now[0] = 12.0
        assert await catalog.served() is not None and chat.calls == 3
    finally:
        await channel.close()
        await server.stop(None)
