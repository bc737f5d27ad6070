"""``python -m sutazai_chat``: wiring only."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import redis.asyncio as redis
import uvloop
from sutazai.chat.v1 import chat_pb2_grpc
from sutazai_runtime.discovery import open_registry
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.logging import configure_logging, redact_url
from sutazai_runtime.probes import Probe, redis_probe
from sutazai_runtime.resilience import BreakerPolicy, CircuitBreaker
from sutazai_runtime.resilience.guards import breaker_guard, upstream_guard
from sutazai_runtime.resilience.metrics import breaker_transition
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy
from sutazai_runtime.startup import connect_with_retry
from sutazai_runtime.telemetry import configure_tracing

from sutazai_chat.agents import AgentDirectory
from sutazai_chat.backend_config import load_backends
from sutazai_chat.backends import BackendCallError, make_client
from sutazai_chat.cache import ResponseCache
from sutazai_chat.config import Settings
from sutazai_chat.requests import Limits
from sutazai_chat.routing import Backend, Router
from sutazai_chat.server import SERVICE, ChatServicer
from sutazai_chat.service import ChatService

log = logging.getLogger(__name__)


def backend_breaker(name: str, settings: Settings) -> CircuitBreaker:
    """The platform's one breaker (sutazai_runtime.resilience), per model backend: consecutive failures or the
    failure rate over a rolling window open it; after ``breaker_reset_s`` one probe call decides."""
    policy = BreakerPolicy(consecutive_failures=settings.breaker_failures, open_s=settings.breaker_reset_s,
                           failure_rate=settings.breaker_failure_rate,
                           minimum_requests=settings.breaker_minimum_requests)
    return CircuitBreaker(f"chat-backend:{name}", policy, on_transition=breaker_transition)


def build_service(settings: Settings, cache_client: redis.Redis) -> ChatService:
    backends = [
        Backend(spec, make_client(spec, connect_timeout_s=settings.connect_timeout_s,
                                  request_timeout_s=settings.request_timeout_s),
                backend_breaker(spec.name, settings), settings.queue_size,
                interactive_share=settings.interactive_share, background_queue_size=settings.background_queue_size)
        for spec in load_backends(settings)
    ]
    cache = ResponseCache(cache_client, settings.cache_ttl_s, settings.cache_prefix)
    return ChatService(Router(backends, settings.aliases), cache, queue_timeout_s=settings.queue_timeout_s,
                       background_wait_s=settings.background_wait_s)


def build_servicer(settings: Settings, service: ChatService, agents: AgentDirectory | None = None) -> ChatServicer:
    limits = Limits(settings.max_prompt_chars, settings.max_messages, settings.default_max_tokens)
    return ChatServicer(
        service, limits, default_model=settings.default_model,
        default_embed_model=settings.default_embed_model, max_batch_items=settings.max_batch_items,
        batch_concurrency=settings.batch_concurrency, max_embed_inputs=settings.max_embed_inputs, agents=agents,
    )


async def accepts_connections(url: str, timeout_s: float) -> None:
    """Open (and close) a TCP connection to ``url``'s host and port; raise when it is refused or times out."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    async with asyncio.timeout(timeout_s):
        _, writer = await asyncio.open_connection(parts.hostname, port)
    writer.close()


def backends_probe(service: ChatService, *, busy_after_s: float = 0.5) -> Probe:
    """Healthy while at least one backend answers (a failed one is left to failover). A backend busy with calls
    and a closed breaker is answering: it is not asked again, since a single-slot server such as llama.cpp
    would hold the probe behind the generation in progress."""
    backends = service.router.backends

    async def alive(backend: Backend) -> None:
        if backend.in_flight and backend.breaker.state == "closed":
            return
        try:
            async with asyncio.timeout(busy_after_s):
                await backend.client.list_models()
        except TimeoutError:
            # Slow is not down: a single-slot server (llama.cpp) answers nothing while it generates for
            # another client (a user's own app, or another chat instance). If it still accepts connections
            # it is busy, and taking this instance out of the registry would only refuse every chat call.
            await accepts_connections(backend.spec.url, busy_after_s)

    async def check() -> None:
        results = await asyncio.gather(*(alive(b) for b in backends), return_exceptions=True)
        down = [f"{b.name}: {r}" for b, r in zip(backends, results, strict=True) if isinstance(r, BaseException)]
        if len(down) == len(backends):
            raise ConnectionError("; ".join(down))

    return Probe("model_server", ", ".join(redact_url(b.spec.url) for b in backends), check)


async def discover(service: ChatService, interval_s: float) -> None:
    """Refresh the models every backend serves; soon again while a backend has none (still starting)."""
    while True:
        try:
            await service.refresh()
        except BackendCallError:
            log.warning("model discovery failed", exc_info=True)
        empty = any(not b.models for b in service.router.backends)
        await asyncio.sleep(min(2.0, interval_s) if empty else interval_s)


async def run(settings: Settings) -> None:
    cache = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    await connect_with_retry("redis", cache.ping, timeout_s=settings.startup_timeout_s)
    service = build_service(settings, cache)
    registry = await connect_with_retry(
        "registry", lambda: open_registry(settings.discovery, client_name="sutazai-chat",
                                          static_addresses={"agents": settings.agents_addr or ""}),
        timeout_s=settings.startup_timeout_s,
    )
    # agents' instances from the registry's watch (a chat naming agent_id asks for the agent's prompt)
    agents_upstream = Upstream("agents", registry=registry, policy=UpstreamPolicy(timeout_s=5.0))
    agents = AgentDirectory(agents_upstream)
    servicer = build_servicer(settings, service, agents)

    async def close_backends() -> None:
        await asyncio.gather(*(b.client.close() for b in service.router.backends), return_exceptions=True)
        if agents is not None:
            await agents.close()

    await serve(
        GrpcService(
            name="chat",
            settings=settings,
            register=[lambda server: chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, server)],
            service_names=[SERVICE.full_name],
            probes=[redis_probe(cache, settings.redis_url),
                    backends_probe(service, busy_after_s=settings.probe_timeout_s / 2)],
            cleanups=[close_backends, cache.aclose, registry.close],
            registry=registry,
            background=[lambda: discover(service, settings.discovery_interval_s)],
            # every model backend's breaker, and the client side of the agents upstream
            guards=[*(breaker_guard(b.breaker, lambda b=b: b.in_flight) for b in service.router.backends),
                    upstream_guard(agents_upstream)],
        )
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "chat")
    configure_tracing("chat", settings.telemetry)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
