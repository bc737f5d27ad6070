"""The response cache in Redis: replies to deterministic requests (temperature 0, or a seed), keyed by
model, messages and parameters, kept for a TTL; hit and miss counters overall and per model.

A Redis failure never fails a request: the cache then answers "miss" and skips the write."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import redis.asyncio as redis

from sutazai_chat.backends import Params

log = logging.getLogger(__name__)

PREFIX = "sutazai:chat:"


def is_cacheable(params: Params) -> bool:
    return params.temperature == 0 or params.seed is not None


class ResponseCache:
    def __init__(self, client: redis.Redis, ttl_s: int, prefix: str = PREFIX) -> None:
        self._redis = client
        self._ttl_s = ttl_s
        self._prefix = prefix
        self._stats_key = prefix + "cache:stats"
        self._model_prefix = prefix + "cache:model:"
        self._pending: set[asyncio.Task[None]] = set()

    def key(self, model: str, messages: Sequence[dict[str, Any]], params: Params) -> str:
        """Covers everything that shapes a reply: messages with their tool calls and results, and every
        parameter (tools, tool choice, response format, stop, sampling), nested dataclasses included."""
        material = json.dumps({"model": model, "messages": list(messages), "params": asdict(params)},
                              sort_keys=True, separators=(",", ":"))
        return self._prefix + "reply:" + hashlib.sha256(material.encode()).hexdigest()

    async def get(self, key: str, model: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(key)
        except redis.RedisError:
            log.warning("response cache unavailable; answering without it", exc_info=True)
            return None
        # The counters are written after the reply has gone: a hit waits for one round trip only.
        task = asyncio.create_task(self._count("hits" if raw is not None else "misses", model))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return json.loads(raw) if raw is not None else None

    async def _count(self, outcome: str, model: str) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(self._stats_key, "gets", 1)
                pipe.hincrby(self._stats_key, outcome, 1)
                pipe.hincrby(self._model_prefix + model, outcome, 1)
                await pipe.execute()
        except redis.RedisError:
            log.warning("cache counters not updated", exc_info=True)

    async def flush(self) -> None:
        """Wait for the counters still being written (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, json.dumps(value), ex=self._ttl_s)
                pipe.hincrby(self._stats_key, "sets", 1)
                await pipe.execute()
        except redis.RedisError:
            log.warning("response cache unavailable; reply not stored", exc_info=True)

    async def stats(self) -> dict[str, Any]:
        await self.flush()
        counters = {k.decode(): int(v) for k, v in (await self._redis.hgetall(self._stats_key)).items()}
        per_model: dict[str, dict[str, int]] = {}
        async for key in self._redis.scan_iter(match=self._model_prefix + "*", count=200):
            name = key.decode()[len(self._model_prefix):]
            values = {k.decode(): int(v) for k, v in (await self._redis.hgetall(key)).items()}
            per_model[name] = {"hits": values.get("hits", 0), "misses": values.get("misses", 0)}
        info = await self._redis.info()
        hits, misses = counters.get("hits", 0), counters.get("misses", 0)
        return {
            "gets": counters.get("gets", 0), "sets": counters.get("sets", 0), "hits": hits, "misses": misses,
            "evictions": int(info.get("evicted_keys", 0)),
            "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
            "redis_server": {
                "keyspace_hits": int(info.get("keyspace_hits", 0)),
                "keyspace_misses": int(info.get("keyspace_misses", 0)),
                "used_memory": int(info.get("used_memory", 0)),
                "connected_clients": int(info.get("connected_clients", 0)),
            },
            "models": per_model,
        }
