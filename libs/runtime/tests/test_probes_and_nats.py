"""Dependency probes and JetStream set-up against the real Redis, NATS and PostgreSQL."""

import asyncio
import uuid

import aiohttp
import asyncpg
import redis.asyncio as redis
from nats.js.api import RetentionPolicy, StreamConfig
from sutazai_runtime.nats import connect_nats, ensure_stream
from sutazai_runtime.probes import Probe, http_probe, nats_probe, postgres_probe, redis_probe, run_probe, run_probes


async def test_probes_of_running_servers_are_healthy(
    pg_pool: asyncpg.Pool, postgres_url: str, redis_url: str, nats_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    nc = await connect_nats(nats_url, name="probe-test")
    try:
        results = await run_probes(
            [postgres_probe(pg_pool, postgres_url), redis_probe(client, redis_url), nats_probe(nc, nats_url)], 2.0
        )
    finally:
        await nc.close()
        await client.aclose()
    assert [(r.name, r.healthy, r.error) for r in results] == [
        ("postgres", True, ""), ("redis", True, ""), ("nats", True, "")
    ]
    assert all(r.latency_ms > 0 for r in results)


async def test_a_closed_port_is_unhealthy_with_the_reason() -> None:
    async with aiohttp.ClientSession() as session:
        result = await run_probe(http_probe("model_server", session, "http://127.0.0.1:9/v1/models"), 2.0)
    assert not result.healthy
    assert "Connect" in result.error


async def test_a_hanging_dependency_is_cut_off_by_the_timeout() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    result = await run_probe(Probe("slow", "x", hang), 0.2)
    assert not result.healthy
    assert result.error == "no answer within 0.2 s"
    assert result.latency_ms < 1000


async def test_redis_probe_hides_the_password_in_its_target() -> None:
    client = redis.Redis.from_url("redis://:pw@127.0.0.1:6379/0")
    try:
        assert redis_probe(client, "redis://:pw@127.0.0.1:6379/0").target == "redis://:***@127.0.0.1:6379/0"
    finally:
        await client.aclose()


async def test_ensure_stream_creates_then_updates(nats_url: str) -> None:
    nc = await connect_nats(nats_url, name="stream-test")
    js = nc.jetstream()
    name = f"TEST_{uuid.uuid4().hex[:8].upper()}"
    try:
        config = StreamConfig(name=name, subjects=[f"{name.lower()}.>"], retention=RetentionPolicy.WORK_QUEUE)
        created = await ensure_stream(js, config)
        assert created.config.retention == RetentionPolicy.WORK_QUEUE
        config.max_msgs = 1000
        updated = await ensure_stream(js, config)
        assert updated.config.max_msgs == 1000
    finally:
        await js.delete_stream(name)
        await nc.close()
