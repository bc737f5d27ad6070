"""The caches over REST, in the original's shapes: ``GET /api/v1/cache/stats`` (the API cache and chat's
response cache together, with each on its own under ``caches``) and ``POST /api/v1/cache/invalidate``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import grpc
from fastapi import Body, HTTPException
from google.protobuf import json_format
from pydantic import Field
from sutazai.chat.v1 import chat_pb2

from sutazai_gateway import chat_client
from sutazai_gateway.api.deps import AdminUser, CurrentUser, StateDep
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.chat_client import stub
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/cache", tags=["cache"])
log = logging.getLogger(__name__)

Tag = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+$")]
_COUNTERS = ("gets", "sets", "hits", "misses")


def _rate(hits: int, misses: int) -> float:
    return round(hits / (hits + misses), 4) if hits + misses else 0.0


@router.get("/stats", responses=problem_responses(401, 503))
async def cache_stats(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """``gets, sets, hits, misses`` of both caches together; ``evictions`` and ``redis_server`` are the Redis
    server's. ``caches.chat`` is null (with ``chat_error``) while the chat service cannot be asked."""
    caches: dict[str, Any] = {"api": None, "chat": None}
    models: dict[str, Any] = {}
    chat_error = None
    if state.api_cache is not None:
        try:
            api = await state.api_cache.counts()
        except Exception as exc:  # Redis away: say so
            raise HTTPException(503, f"the API cache's counters cannot be read: {type(exc).__name__}") from exc
        caches["api"] = {**api, "hit_rate": _rate(api["hits"], api["misses"]), "ttl_s": state.api_cache.ttl_s}
    try:
        stats = await stub(state).GetCacheStats(chat_pb2.CacheStatsRequest(), metadata=user.to_metadata(),
                                                timeout=chat_client.QUICK_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        chat_error = f"{exc.code().name}: {exc.details()}"
        stats = None
    redis_server: dict[str, int] = {}
    evictions = 0
    if stats is not None:
        chat = {name: getattr(stats, name) for name in _COUNTERS}
        caches["chat"] = {**chat, "hit_rate": _rate(chat["hits"], chat["misses"])}
        models = {m.model: {"hits": m.hits, "misses": m.misses} for m in stats.models}
        redis_server = {k: int(v) for k, v in json_format.MessageToDict(stats.redis_server).items()}
        evictions = stats.evictions
    totals = {name: sum(c[name] for c in caches.values() if c) for name in _COUNTERS}
    hit_rate = _rate(totals["hits"], totals["misses"])
    return {**totals, "evictions": evictions, "hit_rate": hit_rate, "hit_rate_percent": round(hit_rate * 100, 2),
            "redis_server": redis_server, "caches": caches, "models": models, "chat_error": chat_error}


@router.post("/invalidate", responses=problem_responses(401, 403, 413, 422, 503))
async def invalidate(tags: Annotated[list[Tag], Body(max_length=100)], _: AdminUser, state: StateDep
                     ) -> dict[str, Any]:
    """Admin. The original's JSON array of tags: ``all``, ``agents``, ``agent:<id>``, ``agents:list``,
    ``models``, ``documents``, ``documents:<user id>``. Every entry carrying one is dropped on every gateway
    process. Chat's response cache is not tag-based and is left alone."""
    if state.api_cache is None:
        raise HTTPException(503, "the API cache is off (SUTAZAI_GATEWAY_API_CACHE_TTL_S=0)")
    try:
        await state.api_cache.invalidate(tags)
    except Exception as exc:
        raise HTTPException(503, f"the API cache cannot be reached: {type(exc).__name__}") from exc
    log.info("API cache invalidated: %s", ", ".join(tags))
    return {"message": f"{len(tags)} tag(s) invalidated", "tags": tags,
            "timestamp": datetime.now(UTC).isoformat()}
