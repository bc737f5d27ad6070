"""Rate-limit counters in Redis, shared by every gateway process and instance: the ``limits`` library's
sliding-window counter (its async Redis storage over redis-py, its key layout and its window arithmetic),
decided and measured in **one** round trip.

Why one script of our own: the library answers a hit with a bool only, and the ``RateLimit-*`` headers of
every response then need ``get_window_stats``, a second Lua call (measured in an earlier attempt: +0.37 ms
of gateway CPU per request, 0.78x throughput on the one-hop read). ``ACQUIRE_AND_MEASURE`` is limits'
``acquire_sliding_window.lua`` answering the window it saw as well; it reads and writes limits' own keys, so
``SlidingWindowCounterRateLimiter`` (``self.library``) reads, tests and clears the same state.

Requests that arrive while a call is under way go together in the next call (the script takes several
buckets): no wait when idle, one call for many requests when busy.

A bucket far from its limit (a tenth of it left, and at least ``FAR_MARGIN_MIN``) is counted in process and
added in Redis every ``SYNC_EVERY_S``: a Redis round trip per request is the one cost of a limit, and only a
bucket that sees many requests a second can be far from its limit and costly at once (the original's 60 a
minute are always decided in Redis, exactly). See ``RedisRateLimiter.hit`` for the bound on overshoot.

The calls go over one connection of the limiter's own, made from redis-py's client settings: the calls never
overlap, so the pool's checkout and release, its lock and the client's retry wrapper were per-call work for
nothing (``bench/gateway_ratelimit.py``).

Redis slow or away never fails a request: past ``timeout_s`` the request is let through without headers,
and Redis is left alone for ``PAUSE_S`` before the next try (so an outage costs no timeout per request).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

PAUSE_S = 5.0
KEYS_REMEMBERED = 10_000  # buckets this process keeps state for (the idle ones are forgotten beyond it)
# A bucket with more than max(FAR_MARGIN_MIN, limit // FAR_FRACTION) left lets requests through in process and
# counts them in Redis every SYNC_EVERY_S; its picture of the window is trusted for FRESH_S.
FAR_MARGIN_MIN = 100
FAR_FRACTION = 10
SYNC_EVERY_S = 0.05
FRESH_S = 1.0

ACQUIRE_AND_MEASURE = """
-- limits' acquire_sliding_window.lua (limits 5.8) for each of several buckets (KEYS: previous and current
-- window's key per bucket; ARGV: limit, expiry, amount and record per bucket), answering per bucket
-- {acquired, previous count, previous TTL, current count, current TTL} (TTLs in ms) instead of a bool.
-- record = 1: the amount was already let through (counted locally, see RedisRateLimiter): add it whatever the
-- window holds.
local answer = {}
for i = 1, #KEYS / 2 do
    local previous_key, current_key = KEYS[2 * i - 1], KEYS[2 * i]
    local limit = tonumber(ARGV[4 * i - 3])
    local expiry = tonumber(ARGV[4 * i - 2]) * 1000
    local amount = tonumber(ARGV[4 * i - 1])
    local record = ARGV[4 * i] == '1'

    local current_ttl = tonumber(redis.call('pttl', current_key))
    if current_ttl > 0 and current_ttl < expiry then
        -- Current window expired, shift it to the previous window
        redis.call('rename', current_key, previous_key)
        redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
    end

    local previous_count = tonumber(redis.call('get', previous_key)) or 0
    local previous_ttl = tonumber(redis.call('pttl', previous_key)) or 0
    local current_count = tonumber(redis.call('get', current_key)) or 0
    current_ttl = tonumber(redis.call('pttl', current_key)) or 0
    if previous_ttl <= 0 then previous_ttl = 0 end
    if current_ttl <= 0 then current_ttl = 0 end

    local acquired = 0
    local weighted_count = math.floor(previous_count * previous_ttl / expiry) + current_count
    if record or (amount <= limit and (weighted_count + amount) <= limit) then
        acquired = 1
        if redis.call('exists', current_key) == 1 then
            current_count = redis.call('incrby', current_key, amount)
        else
            redis.call('set', current_key, amount, 'PX', expiry * 2)
            current_count = amount
            current_ttl = expiry * 2
        end
    end
    for _, value in ipairs({acquired, previous_count, previous_ttl, current_count, current_ttl}) do
        answer[#answer + 1] = value
    end
end
return answer
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after_s: int  # whole seconds until the window has room again (RateLimit-Reset, Retry-After)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The IETF ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (delta seconds)."""
        return [(b"ratelimit-limit", b"%d" % self.limit), (b"ratelimit-remaining", b"%d" % self.remaining),
                (b"ratelimit-reset", b"%d" % self.reset_after_s)]


def measure(item: RateLimitItem, acquired: bool, previous_count: int, previous_ttl_s: float, current_count: int,
            current_ttl_s: float) -> Decision:
    """limits' ``SlidingWindowCounterRateLimiter.get_window_stats`` arithmetic, on the window the script saw."""
    expiry = item.get_expiry()
    weighted = previous_count * previous_ttl_s / expiry + current_count
    remaining = max(0, item.amount - math.floor(weighted))
    reset_in = 0.0
    if previous_count or current_count:
        # (a remainder of 0 is a whole period: the window was just made)
        previous_reset_in = (previous_ttl_s % (expiry / previous_count) or expiry / previous_count
                             if previous_count else math.inf)
        current_reset_in = current_ttl_s % expiry or expiry if current_count else math.inf
        reset_in = min(previous_reset_in, current_reset_in)
    reset_after = math.ceil(reset_in)
    if not acquired:
        reset_after = max(1, reset_after)
    return Decision(acquired, item.amount, remaining, reset_after)


@dataclass(slots=True, eq=False)
class _Bucket:
    """One bucket's keys and what this process knows of it since its last answer from Redis."""

    item: RateLimitItem
    keys: list[str]
    margin: int  # more than this left: let requests through here and count them in Redis a moment later
    remaining: int = 0  # as of the last answer, less what was let through here since
    reset_after_s: int = 0
    synced_at: float = -math.inf
    unsynced: int = 0  # let through here, not yet added in Redis

    def far_from_limit(self, now: float) -> bool:
        return self.remaining > self.margin and now - self.synced_at < FRESH_S


# (bucket, amount, record): record = the amount was already let through, add it whatever the window holds
Entry = tuple[_Bucket, int, bool]


class RedisRateLimiter:
    def __init__(self, redis_url: str, key_prefix: str, timeout_s: float) -> None:
        self.storage = RedisStorage(
            "async+" + redis_url, implementation="redispy", key_prefix=key_prefix + "limits",
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
        )
        # The library itself, on the same keys: window stats, test and clear (tests, operators).
        self.library = SlidingWindowCounterRateLimiter(self.storage)
        self._client: redis.Redis = self.storage.bridge.get_connection()
        self._script = self._client.register_script(ACQUIRE_AND_MEASURE)
        # One connection of its own (made from the client's settings): calls never overlap (see ``hit``), so the
        # pool's checkout, its lock and the client's retry wrapper are per-call work for nothing.
        self._connection: redis.Connection | None = None
        self._buckets: dict[tuple[RateLimitItem, tuple[str, ...]], _Bucket] = {}
        self._unsynced: set[_Bucket] = set()
        self._sync_due: asyncio.TimerHandle | None = None
        self._paused_until = 0.0
        self._busy = False  # a call to Redis is under way
        self._waiting: list[tuple[Entry, asyncio.Future[Decision | None]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.calls = 0  # calls made to Redis (fewer than decisions when requests came together)

    def _bucket(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> _Bucket:
        found = self._buckets.get((item, identifiers))
        if found is None:
            if len(self._buckets) >= KEYS_REMEMBERED:
                self._buckets = {k: b for k, b in self._buckets.items() if b.unsynced}
            found = self._buckets[item, identifiers] = _Bucket(
                item, self.keys(item, *identifiers), max(FAR_MARGIN_MIN, item.amount // FAR_FRACTION))
        return found

    def keys(self, item: RateLimitItem, *identifiers: str) -> list[str]:
        """The previous and current window's keys, as limits names them."""
        key = item.key_for(*identifiers)
        bridge = self.storage.bridge
        return [bridge.prefixed_key(self.storage._previous_window_key(key)),
                bridge.prefixed_key(self.storage._current_window_key(key))]

    @property
    def paused(self) -> bool:
        """Redis failed a moment ago: requests pass without asking it until ``PAUSE_S`` have gone."""
        return time.monotonic() < self._paused_until

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Decision | None:
        """Count one request; None when Redis could not be asked (the request is then let through).

        A bucket far from its limit (more than a tenth of it, and ``FAR_MARGIN_MIN``, left at its last answer
        from Redis, under ``FRESH_S`` ago) lets the request through here and adds it in Redis with the others
        of the next ``SYNC_EVERY_S``: only there can a request cost nothing but arithmetic. Near the limit every
        request is decided in Redis, so the limit holds exactly across processes and instances; the most a
        bucket can overshoot is what the other processes let through in their last ``SYNC_EVERY_S``, while a
        tenth of the limit was still left.

        Requests that go to Redis while a call is under way wait for it to end and then go together, in one
        call: no wait when the gateway is idle, one call for many requests when it is busy (redis-py's per-call
        work is most of what a decision costs the process)."""
        if self._paused_until and self.paused:
            return None
        bucket = self._bucket(item, identifiers)
        if bucket.far_from_limit(time.monotonic()):
            bucket.remaining -= 1
            bucket.unsynced += 1
            self._unsynced.add(bucket)
            if self._sync_due is None:
                self._sync_due = asyncio.get_running_loop().call_later(SYNC_EVERY_S, self._sync)
            return Decision(True, item.amount, bucket.remaining, bucket.reset_after_s)
        return (await self._submit([(bucket, 1, False)]))[0]

    def _sync(self) -> None:
        """Add in Redis what was let through here since the last time (one call for every such bucket)."""
        self._sync_due = None
        entries: list[Entry] = []
        for bucket in self._unsynced:
            entries.append((bucket, bucket.unsynced, True))
            bucket.unsynced = 0
        self._unsynced.clear()
        if entries:
            task = asyncio.create_task(self._submit(entries))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _submit(self, entries: list[Entry]) -> list[Decision | None]:
        if self._busy:
            loop = asyncio.get_running_loop()
            futures = [loop.create_future() for _ in entries]
            self._waiting += zip(entries, futures, strict=True)
            return list(await asyncio.gather(*futures)) if len(futures) > 1 else [await futures[0]]
        self._busy = True
        try:
            return await self._call(entries)
        finally:
            self._next()

    def _next(self) -> None:
        """The call ended: send what waited meanwhile, as one call, or be idle."""
        if not self._waiting:
            self._busy = False
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.create_task(self._call_for(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call_for(self, batch: list[tuple[Entry, asyncio.Future[Decision | None]]]) -> None:
        try:
            decisions = await self._call([entry for entry, _ in batch])
        except BaseException:
            decisions = [None] * len(batch)
            raise
        finally:
            for (_, future), decision in zip(batch, decisions, strict=True):
                if not future.done():
                    future.set_result(decision)
            self._next()

    async def _call(self, entries: list[Entry]) -> list[Decision | None]:
        keys: list[str] = []
        args: list[int] = []
        for bucket, amount, record in entries:
            keys += bucket.keys
            args += (bucket.item.amount, bucket.item.get_expiry(), amount, int(record))
        self.calls += 1
        try:
            answer = await self._evalsha(keys, args)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            self._paused_until = time.monotonic() + PAUSE_S
            log.warning("rate limits unavailable for %s s, requests pass unlimited: %s", PAUSE_S, exc)
            await self._drop_connection()
            return [None] * len(entries)
        self._paused_until = 0.0
        now = time.monotonic()
        decisions: list[Decision | None] = []
        for i, (bucket, _, _) in enumerate(entries):
            decision = measure(bucket.item, bool(answer[5 * i]), int(answer[5 * i + 1]), int(answer[5 * i + 2]) / 1000,
                               int(answer[5 * i + 3]), int(answer[5 * i + 4]) / 1000)
            bucket.remaining = decision.remaining - bucket.unsynced
            bucket.reset_after_s, bucket.synced_at = decision.reset_after_s, now
            decisions.append(decision)
        return decisions

    async def _evalsha(self, keys: list[str], args: list[int]) -> list[int]:
        """The script on this limiter's own connection (loaded on first use and after a Redis restart)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = self._client.connection_pool.make_connection()
            await connection.connect()
        try:
            try:
                await connection.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
                answer = await connection.read_response()
            except NoScriptError:
                await connection.send_command("SCRIPT", "LOAD", ACQUIRE_AND_MEASURE)
                await connection.read_response()
                await connection.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
                answer = await connection.read_response()
        except BaseException:
            # Cancelled or failed mid-call: a reply may still be on its way, so the connection is not reused.
            self._connection = None
            closing = asyncio.ensure_future(connection.disconnect(nowait=True))
            self._tasks.add(closing)
            closing.add_done_callback(self._tasks.discard)
            raise
        return answer  # type: ignore[no-any-return]

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.disconnect()
            except Exception:  # already broken; a new one is made on the next call
                log.debug("closing the rate-limit connection failed", exc_info=True)

    async def aclose(self) -> None:
        if self._sync_due is not None:  # what was let through here is still added in Redis
            self._sync_due.cancel()
            self._sync()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        await self._drop_connection()
        await self._client.aclose()
