"""Rate limits: who counts against which bucket (no I/O), and the one-round-trip counter in the real Redis,
checked against the ``limits`` library reading the same keys."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest
from limits import parse
from pydantic import ValidationError
from sutazai_gateway.config import Settings
from sutazai_gateway.ratelimit import RedisRateLimiter
from sutazai_gateway.ratelimit_policy import Policy, limit_class

DEFAULTS = {"default": "60/minute", "chat": "30/minute", "chat_stream": "20/minute"}


def test_each_request_counts_against_one_bucket_of_its_caller() -> None:
    assert limit_class("POST", "/api/v1/chat/stream") == "chat_stream"
    assert limit_class("POST", "/v1/chat/completions") == "chat"
    assert limit_class("GET", "/api/v1/chat") == "default"
    policy = Policy(DEFAULTS, "10/minute", overrides={
        "user:u2": "600/minute", "key:abcd1234": {"chat": "5/minute"}, "user:u3": "unlimited"})
    target = policy.for_caller("u1", False, None, "GET", "/api/v1/agents")
    assert target is not None and (target.item.amount, target.bucket, target.who) == (60, "default", "user:u1")
    chat = policy.for_caller("u1", False, None, "POST", "/api/v1/chat")
    assert chat is not None and chat.item.amount == 30
    assert policy.for_caller("u1", True, None, "GET", "/api/v1/agents") is None  # admins are exempt
    assert Policy(DEFAULTS, "10/minute", admins=True).for_caller("u1", True, None, "GET", "/x") is not None
    by_user = policy.for_caller("u2", False, None, "POST", "/api/v1/chat/stream")
    assert by_user is not None and by_user.item.amount == 600
    assert policy.for_caller("u3", False, None, "GET", "/x") is None
    # A key with an override of its own has its own bucket for the classes it names, the user's otherwise.
    by_key = policy.for_caller("u1", False, "abcd1234", "POST", "/api/v1/chat")
    assert by_key is not None and (by_key.item.amount, by_key.who) == (5, "key:abcd1234")
    other = policy.for_caller("u1", False, "abcd1234", "GET", "/x")
    assert other is not None and other.who == "user:u1"
    anonymous = policy.for_address("10.0.0.1")
    assert anonymous is not None and (anonymous.item.amount, anonymous.who) == (10, "addr:10.0.0.1")


def test_bad_limit_settings_are_refused_at_start() -> None:
    secret = "k8Vq2xLw9Rz4Tn7Yp3Mb6Hc1Jd5Gf0Ae"
    with pytest.raises(ValidationError, match="rate limit string"):
        Settings(jwt_secret=secret, rate_limit_default="sixty a minute")
    with pytest.raises(ValidationError, match="user:<user id>"):
        Settings(jwt_secret=secret, rate_limit_overrides={"bob": "10/minute"})
    with pytest.raises(ValidationError, match="unknown class"):
        Settings(jwt_secret=secret, rate_limit_overrides={"user:x": {"uploads": "10/minute"}})
    with pytest.raises(ValidationError, match="list the origins"):
        Settings(jwt_secret=secret, cors_origins=["*"])
    assert Settings(jwt_secret=secret, cors_origins=["*"], cors_allow_credentials=False).cors_origins == ["*"]


async def test_one_round_trip_decides_and_agrees_with_the_library(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, f"test:{uuid.uuid4().hex}:", 1.0)
    item = parse("5/minute")
    try:
        seen = [await limiter.hit(item, "default", "user:a") for _ in range(6)]
        assert [d.allowed for d in seen if d] == [True] * 5 + [False]
        assert [d.remaining for d in seen if d] == [4, 3, 2, 1, 0, 0]
        assert all(d is not None and d.limit == 5 and 0 < d.reset_after_s <= 60 for d in seen)
        # The library, reading the same keys, sees the same window.
        stats = await limiter.library.get_window_stats(item, "default", "user:a")
        assert stats.remaining == 0 and 0 < stats.reset_time - time.time() <= 60
        assert not await limiter.library.test(item, "default", "user:a")
        # Another caller has a bucket of their own.
        other = await limiter.hit(item, "default", "user:b")
        assert other is not None and other.allowed and other.remaining == 4
        await limiter.library.clear(item, "default", "user:a")
        again = await limiter.hit(item, "default", "user:a")
        assert again is not None and again.allowed
    finally:
        for who in ("user:a", "user:b"):
            await limiter.library.clear(item, "default", who)
        await limiter.aclose()


async def test_requests_that_come_together_share_calls_and_are_counted_exactly(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, f"test:{uuid.uuid4().hex}:", 1.0)
    item, other = parse("5/minute"), parse("100/minute")
    try:
        together = await asyncio.gather(*(limiter.hit(item, "default", "user:a") for _ in range(12)),
                                        *(limiter.hit(other, "chat", "user:b") for _ in range(8)))
        mine, theirs = together[:12], together[12:]
        assert all(d is not None for d in together)
        assert sorted(d.remaining for d in mine if d and d.allowed) == [0, 1, 2, 3, 4]
        assert sum(1 for d in mine if d and not d.allowed) == 7
        assert sorted(d.remaining for d in theirs if d and d.allowed) == list(range(92, 100))
        assert limiter.calls < 20  # twenty decisions, fewer calls: those waiting went together
        assert (await limiter.library.get_window_stats(item, "default", "user:a")).remaining == 0
    finally:
        await limiter.library.clear(item, "default", "user:a")
        await limiter.library.clear(other, "chat", "user:b")
        await limiter.aclose()


async def test_without_redis_requests_pass_and_redis_is_not_asked_for_a_while() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", "test:", 0.5)
    item = parse("1/minute")
    try:
        assert await limiter.hit(item, "default", "user:a") is None
        assert limiter.paused  # the next requests do not try Redis (and wait for it) again
        assert await limiter.hit(item, "default", "user:a") is None
    finally:
        await limiter.aclose()


async def test_a_bucket_far_from_its_limit_is_counted_in_process_and_the_limit_still_holds_exactly(
        redis_url: str) -> None:
    """Two gateway processes sharing a 1,000 a minute bucket: while more than a tenth is left each lets requests
    through without a round trip and adds them in Redis every SYNC_EVERY_S; near the limit each asks Redis, so
    exactly 1,000 pass, and Redis counts every one of them."""
    prefix = f"test:{uuid.uuid4().hex}:"
    first, second = (RedisRateLimiter(redis_url, prefix, 1.0) for _ in range(2))
    item = parse("1000/minute")
    allowed = 0
    try:
        for i in range(1100):
            decision = await (first, second)[i % 2].hit(item, "default", "user:busy")
            assert decision is not None
            allowed += decision.allowed
            if i % 20 == 19:
                await asyncio.sleep(0.06)  # the processes' event loops run: their counts reach Redis
        calls = first.calls + second.calls
        assert allowed == 1000
        assert calls < 600  # far from the limit, no call per request
        await asyncio.sleep(0.1)
        assert (await first.library.get_window_stats(item, "default", "user:busy")).remaining == 0
        # the original's 60 a minute never count in process: each request is decided in Redis
        small = parse("60/minute")
        before = first.calls
        assert [(await first.hit(small, "default", "user:small")) is not None for _ in range(5)] == [True] * 5
        assert first.calls == before + 5
    finally:
        await first.library.clear(item, "default", "user:busy")
        await first.library.clear(parse("60/minute"), "default", "user:small")
        await first.aclose()
        await second.aclose()
