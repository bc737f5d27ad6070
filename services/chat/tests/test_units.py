"""Pure logic: breaker states, slots and queue, model resolution, backend configuration, validation."""

from __future__ import annotations

import asyncio
import json

import pytest
from sutazai_chat.backend_config import load_backends
from sutazai_chat.config import Settings
from sutazai_chat.errors import InvalidRequestError, ModelNotFoundError
from sutazai_chat.requests import Limits, build_call
from sutazai_chat.routing import Backend, QueueFullError, Router
from sutazai_runtime.resilience import BreakerPolicy, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_n_failures_probes_once_half_open_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker("b", BreakerPolicy(consecutive_failures=3, open_s=60), clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.acquire()
    clock.now = 59.9
    assert breaker.state == "open"
    clock.now = 60
    assert breaker.state == "half_open"
    assert breaker.acquire() and not breaker.acquire()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == "open"  # a failed probe re-opens for another full period
    clock.now = 120
    assert breaker.acquire()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


def _backend(name: str, models: set[str], *, weight: float = 1, concurrency: int = 1, queue: int = 0) -> Backend:
    settings = Settings(backends=json.dumps([{"name": name, "kind": "openai", "url": "http://127.0.0.1:9",
                                              "weight": weight, "concurrency": concurrency}]))
    spec = load_backends(settings, environ={})[0]
    breaker = CircuitBreaker(name, BreakerPolicy(open_s=60))
    return Backend(spec, client=None, breaker=breaker, queue_size=queue, models=models)  # type: ignore[arg-type]


async def test_slots_queue_up_to_the_limit_then_refuse() -> None:
    backend = _backend("a", {"m"}, concurrency=1, queue=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with backend.slot(5):
            await release.wait()

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    second = asyncio.create_task(hold())  # waits in the queue
    await asyncio.sleep(0)
    assert (backend.in_flight, backend.waiting) == (1, 1)
    with pytest.raises(QueueFullError):
        async with backend.slot(5):
            pass
    release.set()
    await asyncio.gather(first, second)
    assert (backend.in_flight, backend.waiting) == (0, 0)


def test_router_prefers_weighted_least_loaded_and_loaded_models() -> None:
    a, b = _backend("a", {"m"}), _backend("b", {"m"}, weight=3)
    router = Router([a, b], {"alias": "m"})
    a.in_flight, b.in_flight = 1, 2  # loads: a (1+1)/1 = 2, b (2+1)/3 = 1
    assert [x.name for x in router.candidates("m")] == ["b", "a"]
    a.loaded = {"m"}
    assert [x.name for x in router.candidates("m")] == ["a", "b"]
    assert router.resolve("alias") == "m"
    with pytest.raises(ModelNotFoundError, match="available models: alias, m"):
        router.resolve("gpt-5")


def test_backends_file_with_env_api_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "backends.yaml"
    path.write_text("backends:\n  - {name: gpu-1, kind: ollama, url: 'http://gpu1:11434/', weight: 2}\n")
    specs = load_backends(Settings(backends_file=path), environ={"SUTAZAI_CHAT_BACKEND_GPU_1_API_KEY": "s3cret"})
    assert specs[0].url == "http://gpu1:11434" and specs[0].weight == 2
    assert specs[0].api_key is not None and specs[0].api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(specs[0])
    with pytest.raises(ValueError, match="kind"):
        load_backends(Settings(backends='[{"name": "x", "kind": "vllm", "url": "http://x"}]'), environ={})


def test_default_backends_are_the_local_model_and_embedding_servers() -> None:
    settings = Settings(model_url="http://127.0.0.1:1", embeddings_url="http://127.0.0.1:2")
    assert [(s.name, s.url) for s in load_backends(settings, environ={})] == [
        ("local", "http://127.0.0.1:1"), ("local-embeddings", "http://127.0.0.1:2")]


def test_system_prompt_goes_first_and_limits_hold() -> None:
    limits = Limits(max_prompt_chars=10, max_messages=3)
    call = build_call(limits, model="m", messages=[("user", "hi")], system="be kind")
    assert [m["role"] for m in call.messages] == ["system", "user"]
    with pytest.raises(InvalidRequestError, match="limit is 10"):
        build_call(limits, model="m", messages=[("user", "x" * 11)])
    with pytest.raises(InvalidRequestError, match="too many messages"):
        build_call(limits, model="m", messages=[("user", "a")] * 4)
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        build_call(limits, model="m", messages=[("user", "a")], max_tokens=0)
    capped = Limits(max_prompt_chars=10, max_messages=3, default_max_tokens=64)
    assert build_call(capped, model="m", messages=[("user", "a")]).params.max_tokens == 64
    assert build_call(capped, model="m", messages=[("user", "a")], max_tokens=8).params.max_tokens == 8
