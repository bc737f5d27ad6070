"""Build the FastAPI application; ``__main__`` serves it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

import redis.asyncio as redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sutazai_runtime import subjects
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.nats import connect_nats
from sutazai_runtime.postgres import apply_migrations, create_pool, load_migrations
from sutazai_runtime.probes import nats_probe, postgres_probe, redis_probe
from sutazai_runtime.process import die_with_parent, freeze_startup_objects
from sutazai_runtime.startup import connect_with_retry
from sutazai_runtime.telemetry import configure_tracing

from sutazai_gateway import __version__
from sutazai_gateway.api.deps import GatewayState, admin_user, current_user
from sutazai_gateway.api.routes import agents as agents_routes
from sutazai_gateway.api.routes import auth, health, root, tasks
from sutazai_gateway.api.routes import cache as cache_routes
from sutazai_gateway.api.routes import chat as chat_routes
from sutazai_gateway.api.routes import documents as document_routes
from sutazai_gateway.api.routes import graph as graph_routes
from sutazai_gateway.api.routes import mcp as mcp_routes
from sutazai_gateway.api.routes import memory as memory_routes
from sutazai_gateway.api.routes import mesh as mesh_routes
from sutazai_gateway.api.routes import ollama_compat as ollama_routes
from sutazai_gateway.api.routes import openai_compat as openai_routes
from sutazai_gateway.api.routes import performance as performance_routes
from sutazai_gateway.api.routes import vectors as vector_routes
from sutazai_gateway.api_cache import ApiCache
from sutazai_gateway.auth.revocations import Revocations, revocation_subject
from sutazai_gateway.auth.service import Authenticator, bootstrap_admin
from sutazai_gateway.auth.store import AuthStore
from sutazai_gateway.auth.usage import KeyUsage
from sutazai_gateway.body_limit import BodySizeLimit
from sutazai_gateway.compression import GZipWhenAsked
from sutazai_gateway.config import Settings
from sutazai_gateway.health_monitor import HealthMonitor
from sutazai_gateway.http_metrics import HttpMetrics
from sutazai_gateway.mcp_server import McpEndpoint, build_mcp_server
from sutazai_gateway.metrics import MULTIPROC_DIR_ENV
from sutazai_gateway.metrics import serve_metrics as serve_metrics_here
from sutazai_gateway.nul_guard import RefuseNul
from sutazai_gateway.performance import GatewayMetrics, Window
from sutazai_gateway.problems import complete_problem_declarations, install_problem_handlers
from sutazai_gateway.ratelimit import RedisRateLimiter
from sutazai_gateway.ratelimit_middleware import EXEMPT_PATHS, RateLimit
from sutazai_gateway.ratelimit_policy import Policy
from sutazai_gateway.request_id import RequestId
from sutazai_gateway.upstreams import Upstreams, open_gateway_registry

log = logging.getLogger(__name__)


def breaker_reset_subject(settings: Settings) -> str:
    """Where a breaker reset is announced to every gateway process serving this port (and only those)."""
    return f"sutazai.gateway.{settings.port}.breakers.reset"


def create_worker_app() -> FastAPI:
    """One of several worker processes (uvicorn ``factory``): settings and logging of its own; the
    supervisor serves the metrics. It ends when the supervisor dies, even by SIGKILL."""
    parent = multiprocessing.parent_process()
    die_with_parent(parent.pid if parent else None)
    settings = Settings()
    configure_logging(settings.log_level, "gateway")
    configure_tracing("gateway", settings.telemetry)
    return create_app(settings, serve_metrics=False)


def limit_policy(settings: Settings) -> Policy:
    defaults = {"default": settings.rate_limit_default, "chat": settings.rate_limit_chat,
                "chat_stream": settings.rate_limit_chat_stream}
    return Policy(defaults, settings.rate_limit_anonymous, admins=settings.rate_limit_admins,
                  overrides=settings.rate_limit_overrides)


def create_app(settings: Settings, *, serve_metrics: bool = True) -> FastAPI:
    # Several worker processes write their metrics to this folder (set by __main__ before they start).
    gateway_metrics = GatewayMetrics(os.environ.get(MULTIPROC_DIR_ENV) or None)
    metrics_window = Window(gateway_metrics)
    mcp = build_mcp_server(lambda: app.state.gateway)
    mcp_endpoint = McpEndpoint(mcp, lambda: app.state.gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.startup_timeout_s
        minter = settings.identity.minter("gateway")  # no key, or one the services do not trust: no start
        pool = await connect_with_retry("postgres", lambda: create_pool(settings.database_url), timeout_s=timeout)
        await apply_migrations(pool, "auth", load_migrations(files("sutazai_gateway") / "migrations"))
        store = AuthStore(pool)
        usage = KeyUsage(store, settings.key_usage_flush_s)
        authenticator = Authenticator(
            store, settings.jwt_secret.get_secret_value(),
            access_ttl_s=settings.access_token_ttl_s, refresh_ttl_s=settings.refresh_token_ttl_s, usage=usage,
        )
        await bootstrap_admin(
            store, settings.bootstrap_admin_username,
            settings.bootstrap_admin_password.get_secret_value() if settings.bootstrap_admin_password else None,
            settings.bootstrap_api_key.get_secret_value() if settings.bootstrap_api_key else None,
        )
        cache = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        await connect_with_retry("redis", cache.ping, timeout_s=timeout)
        nc = await connect_with_retry(
            "nats", lambda: connect_nats(settings.nats_url, name="sutazai-gateway"), timeout_s=timeout
        )
        registry = await connect_with_retry(
            "registry", lambda: open_gateway_registry(settings), timeout_s=timeout
        )
        upstreams = Upstreams(list(settings.upstream_addresses()), registry, settings)
        probes = [
            postgres_probe(pool, settings.database_url),
            redis_probe(cache, settings.redis_url),
            nats_probe(nc, settings.nats_url),
        ]
        monitor = HealthMonitor(
            upstreams, probes, timeout_s=settings.probe_timeout_s, interval_s=settings.monitor_interval_s,
            min_interval_s=settings.health_min_interval_s,
        )
        limiter = policy = None
        if settings.rate_limit_enabled:
            limiter = RedisRateLimiter(settings.redis_url, settings.cache_prefix, settings.rate_limit_timeout_s)
            policy = limit_policy(settings)
        api_cache = None
        if settings.api_cache_ttl_s:
            api_cache_client = redis.Redis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            api_cache = ApiCache(api_cache_client, settings.cache_prefix, settings.api_cache_ttl_s)
        subject = breaker_reset_subject(settings)

        async def on_reset(msg: Any) -> None:
            name = msg.data.decode(errors="replace") if msg.data else ""  # empty: every breaker
            for upstream in upstreams:
                if not name or upstream.name == name:
                    upstream.breaker.reset()

        async def announce_reset(name: str | None = None) -> None:
            # fire and forget: a lost message leaves a breaker to its timeout
            await nc.publish(subject, (name or "").encode())

        reset_subscription = await nc.subscribe(subject, cb=on_reset)
        revocations = Revocations(nc, revocation_subject(settings.port), authenticator)
        await revocations.start()
        subscriptions = [reset_subscription]
        if api_cache is not None:
            async def on_agent_files_changed(_: Any) -> None:
                await api_cache.invalidate_quietly(["agents"])

            # One process of all the gateways serving this stack is enough: the cache is shared.
            subscriptions.append(await nc.subscribe(subjects.agents_changed(settings.discovery.bucket),
                                                    queue="gateway-api-cache", cb=on_agent_files_changed))
        app.state.gateway = GatewayState(settings, upstreams, monitor, authenticator, time.monotonic(), minter,
                                         announce_reset, revocations, limiter=limiter, limit_policy=policy,
                                         api_cache=api_cache)
        if settings.metrics_port and serve_metrics:
            serve_metrics_here(settings.metrics_port, settings.host)
        monitor_task = asyncio.create_task(monitor.run())
        window_task = asyncio.create_task(metrics_window.run())
        usage_task = asyncio.create_task(usage.run())
        log.info("gateway ready", extra={"url": f"http://{settings.host}:{settings.port}"})
        freeze_startup_objects()
        mcp_stop = asyncio.Event()

        async def serve_mcp() -> None:
            # The platform's own MCP server at /mcp. Its session manager holds an anyio task group, which
            # must be left in the task that entered it: a task of its own, not the lifespan's (a lifespan
            # may be entered and left in different tasks, as pytest's session fixtures do).
            async with mcp_endpoint.manager.run():
                await mcp_stop.wait()

        mcp_task = asyncio.create_task(serve_mcp())
        try:
            yield
        finally:
            mcp_stop.set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await mcp_task
            monitor_task.cancel()
            window_task.cancel()
            usage_task.cancel()  # writes the last notes of key use
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(3.0):
                    await usage_task
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    for subscription in subscriptions:
                        await subscription.unsubscribe()
                    await revocations.close()
                    await upstreams.close()
                    await registry.close()
                    await nc.drain()
                    await cache.aclose()
                    if limiter is not None:
                        await limiter.aclose()
                    if api_cache is not None:
                        await api_cache.aclose()
                    await pool.close()
            log.info("gateway stopped")

    app = FastAPI(
        title="SutazAI platform API",
        version=__version__,
        description="One authenticated REST API in front of self-hosted LLM agents.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry only with SUTAZAI_GATEWAY_OTEL: the request span while tracing is on is
        # HttpMetrics' (~100 µs of CPU per request instead of FastAPI's ~145 µs; see docs/decisions.md).
        telemetry={"tracing": settings.otel, "metrics": settings.otel, "logs": settings.otel},
    )
    app.state.gateway_metrics = gateway_metrics
    app.state.metrics_window = metrics_window
    install_problem_handlers(app)
    # Added later = outer. Outermost the request id (every answer and log line carries it), then CORS (so a
    # browser can read refusals too), compression, the rate limit, and the body checks nearest the routes.
    app.add_middleware(RefuseNul)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       overrides={"/api/v1/documents": settings.max_upload_bytes})
    app.add_middleware(RateLimit)
    if settings.gzip_minimum_bytes:
        app.add_middleware(GZipWhenAsked, minimum_size=settings.gzip_minimum_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                            "Retry-After", "X-Total-Count", "Link", "Location", "X-Cache"],
            max_age=600,
        )
    app.add_middleware(RequestId)
    # outermost: counts every request, refused ones too; with tracing on, also the request's SERVER span
    app.add_middleware(HttpMetrics, traced=settings.telemetry.enabled and not settings.otel)
    # Routes are matched in order (no two routers share a path): the millisecond reads and writes first
    # (agents, tasks, memory), then the model calls (seconds each), then the rest. A router with a fixed
    # prefix turns other paths away at once (api/routing.py); one without ("/", health) walks its routes.
    app.include_router(agents_routes.router)
    app.include_router(tasks.router)
    app.include_router(memory_routes.router)
    app.include_router(vector_routes.router)
    app.include_router(document_routes.router)
    app.include_router(graph_routes.router)
    app.include_router(chat_routes.router)
    app.include_router(openai_routes.router)
    app.include_router(ollama_routes.router)
    app.include_router(root.router)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(tasks.orchestrate_router)
    app.include_router(mcp_routes.router)
    app.add_route("/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    app.include_router(mesh_routes.router)
    app.include_router(performance_routes.router)
    app.include_router(cache_routes.router)
    complete_problem_declarations(app, credential=current_user, admin=admin_user,
                                  rate_limited=settings.rate_limit_enabled, unlimited_paths=EXEMPT_PATHS)
    return app
