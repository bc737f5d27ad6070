"""The API cache in the real Redis: hits and misses counted exactly, tags dropping entries, a read that
raced an invalidation never served, and Redis away making every look-up a miss."""

from __future__ import annotations

import uuid

import redis.asyncio as redis
from sutazai_gateway.api_cache import ApiCache


async def test_tags_versions_and_counters(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"
    cache, other_process = ApiCache(client, prefix, 30), ApiCache(client, prefix, 30)
    try:
        first = await cache.get("agent:a", ("agents", "agent:a"))
        assert not first.hit
        await cache.put(first, b'{"id": "a"}', {"X-Total-Count": "1"})
        hit = await other_process.get("agent:a", ("agents", "agent:a"))
        assert (hit.hit, hit.body, hit.headers) == (True, b'{"id": "a"}', {"X-Total-Count": "1"})
        unrelated = await cache.get("agent:b", ("agents", "agent:b"))
        await cache.put(unrelated, b"b")

        await other_process.invalidate(["agent:a"])
        assert not (await cache.get("agent:a", ("agents", "agent:a"))).hit
        assert (await cache.get("agent:b", ("agents", "agent:b"))).hit  # another tag: kept
        await cache.invalidate(["all"])
        assert not (await cache.get("agent:b", ("agents", "agent:b"))).hit

        # A read that started before an invalidation stores an entry that is stale from the start.
        racing = await cache.get("models", ("models",))
        await cache.invalidate(["models"])
        await cache.put(racing, b"old")
        assert not (await cache.get("models", ("models",))).hit

        counts = await cache.counts()
        assert counts == {"gets": 8, "sets": 3, "hits": 2, "misses": 6, "invalidations": 3}
        # Another namespace (another stack) counts apart.
        assert (await ApiCache(client, f"test:{uuid.uuid4().hex}:", 30).counts())["gets"] == 0
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_away_is_a_miss_and_nothing_is_stored() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    cache = ApiCache(client, "test:", 30)
    try:
        lookup = await cache.get("agent:a", ("agents",))
        assert not lookup.hit
        await cache.put(lookup, b"x")  # nothing to do, no error
        await cache.invalidate_quietly(["agents"])  # logged, not raised
    finally:
        await client.aclose()
