"""``python -m sutazai_chat``: wiring only."""

import aiohttp
import redis.asyncio as redis
import uvloop
from sutazai.chat.v1 import chat_pb2_grpc
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.probes import http_probe, redis_probe
from sutazai_runtime.startup import connect_with_retry

from sutazai_chat.config import Settings
from sutazai_chat.server import SERVICE, ChatServicer

# The cheapest call that proves a model server answers, by kind of server.
_LIVENESS_PATH = {"openai": "/v1/models", "ollama": "/api/tags"}


async def run(settings: Settings) -> None:
    cache = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    await connect_with_retry("redis", cache.ping, timeout_s=settings.startup_timeout_s)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, connect=2))
    model_probe = http_probe(
        "model_server", http, settings.model_url.rstrip("/") + _LIVENESS_PATH[settings.model_kind]
    )
    servicer = ChatServicer()
    await serve(
        GrpcService(
            name="chat",
            settings=settings,
            register=[lambda server: chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[redis_probe(cache, settings.redis_url), model_probe],
            cleanups=[http.close, cache.aclose],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "chat")
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
