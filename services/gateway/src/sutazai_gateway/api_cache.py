"""The API cache: answers of cacheable reads (agents, models, documents' metadata) in Redis for ``ttl_s``,
shared by every gateway process and instance, dropped by tag when something they show changes.

Tags are versions, not sets of keys: each tag has a counter in Redis, an entry is stored with the versions of
its tags when it was read, and it is a hit only while they are all unchanged. Invalidating a tag is one
``INCR``, whatever number of entries carry it, and a read that raced an invalidation stores an entry that is
already stale (it carries the old version), so it can never be served. One round trip per look-up: a Lua
script reads the entry and the tags' versions, compares, and counts the hit or miss (``HINCRBY``), so the
counters are exact across processes. Every tag set includes ``all``.

Redis slow or away never fails a request: a look-up is then a miss and nothing is stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis.asyncio as redis

log = logging.getLogger(__name__)

ALL = "all"
TAG_TTL_S = 7 * 24 * 3600  # a tag's version outlives every entry stamped with it (their TTL is far shorter)

_LOOKUP = """
-- KEYS[1] the entry, KEYS[2] the counters, KEYS[3..] the entry's tags' versions
local stamp = {}
for i = 3, #KEYS do stamp[#stamp + 1] = redis.call('get', KEYS[i]) or '0' end
stamp = table.concat(stamp, ',') .. '\\n'
redis.call('hincrby', KEYS[2], 'gets', 1)
local value = redis.call('get', KEYS[1])
if value and string.sub(value, 1, #stamp) == stamp then
    redis.call('hincrby', KEYS[2], 'hits', 1)
    return {1, value}
end
redis.call('hincrby', KEYS[2], 'misses', 1)
return {0, stamp}
"""


@dataclass(slots=True)
class Lookup:
    key: str
    hit: bool
    body: bytes = b""
    headers: dict[str, str] | None = None
    stamp: bytes = b""  # on a miss: the tags' versions as read, stored with the new entry


class ApiCache:
    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int) -> None:
        self._redis = client
        self._prefix = prefix + "api:"
        self._stats_key = self._prefix + "stats"
        self.ttl_s = ttl_s
        self._lookup = client.register_script(_LOOKUP)

    def _tag_key(self, tag: str) -> str:
        return self._prefix + "tag:" + tag

    async def get(self, name: str, tags: Sequence[str]) -> Lookup:
        key = self._prefix + "entry:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        try:
            found, value = await self._lookup(
                keys=[key, self._stats_key, *(self._tag_key(t) for t in (ALL, *tags))])
        except (redis.RedisError, OSError, TimeoutError) as exc:
            log.warning("API cache unavailable, reading through: %s", exc)
            return Lookup(key, False)
        if not found:
            return Lookup(key, False, stamp=value)
        _, meta, body = value.split(b"\n", 2)
        return Lookup(key, True, body, orjson.loads(meta) or None)

    async def put(self, lookup: Lookup, body: bytes, headers: dict[str, str] | None = None) -> None:
        if not lookup.stamp:  # Redis was away at the look-up
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(lookup.key, lookup.stamp + orjson.dumps(headers or {}) + b"\n" + body, ex=self.ttl_s)
                pipe.hincrby(self._stats_key, "sets", 1)
                await pipe.execute()
        except (redis.RedisError, OSError, TimeoutError) as exc:
            log.warning("API cache unavailable, answer not stored: %s", exc)

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Every entry carrying one of ``tags`` is a miss from now on, on every gateway process."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.incr(self._tag_key(tag))
                pipe.expire(self._tag_key(tag), TAG_TTL_S)
            pipe.hincrby(self._stats_key, "invalidations", len(tags))
            await pipe.execute()

    async def invalidate_quietly(self, tags: Sequence[str]) -> None:
        """After a write: a Redis failure is logged, not answered (the entries expire within ``ttl_s``)."""
        try:
            await self.invalidate(tags)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            log.warning("API cache not invalidated (%s); its entries expire within %s s: %s",
                        ", ".join(tags), self.ttl_s, exc)

    async def counts(self) -> dict[str, int]:
        raw = await self._redis.hgetall(self._stats_key)
        values = {k.decode(): int(v) for k, v in raw.items()}
        return {name: values.get(name, 0) for name in ("gets", "sets", "hits", "misses", "invalidations")}

    async def aclose(self) -> None:
        await self._redis.aclose()
