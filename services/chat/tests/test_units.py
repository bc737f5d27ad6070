"""Pure logic: breaker states, slots and queue, model resolution, backend configuration, validation."""

from __future__ import annotations

import asyncio
import json

import pytest
from sutazai_chat.backend_config import load_backends
from sutazai_chat.backends import Params
from sutazai_chat.cache import ResponseCache
from sutazai_chat.config import Settings
from sutazai_chat.errors import InvalidRequestError, ModelNotFoundError
from sutazai_chat.requests import Limits, build_call
from sutazai_chat.routing import Backend, QueueFullError, Router
from sutazai_chat.tooling import ResponseFormat, Tool
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


WEATHER = Tool("get_weather", "weather", json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}))


def test_tools_tool_choice_and_formats_are_validated_and_carried() -> None:
    limits = Limits(max_prompt_chars=1000, max_messages=10)
    call = build_call(limits, model="m", messages=[("user", "hi")], tools=[WEATHER], tool_choice="function",
                      tool_choice_function="get_weather", stop=["\n"], top_p=0.5)
    assert call.params.tools == (WEATHER,) and call.params.tool_choice == "function"
    assert call.params.tool_choice_function == "get_weather" and call.params.stop == ("\n",)
    assert build_call(limits, model="m", messages=[("user", "hi")], tools=[WEATHER]).params.tool_choice == "auto"
    bad = [
        ({"tool_choice": "function", "tool_choice_function": "nope", "tools": [WEATHER]}, "not among the tools"),
        ({"tool_choice": "required"}, "needs tools"),
        ({"tool_choice": "sometimes", "tools": [WEATHER]}, "tool_choice must be one of"),
        ({"tools": [Tool("bad name!")]}, "tool name"),
        ({"tools": [Tool("t", parameters="{oops")]}, "not valid JSON"),
        ({"tools": [Tool("t", parameters='{"type": "string"}')]}, "object schema"),
        ({"tools": [WEATHER, WEATHER]}, "same name"),
        ({"response_format": ResponseFormat("json_schema")}, "needs a schema"),
        ({"top_p": 0}, "top_p"),
        ({"stop": ["a"] * 5}, "stop"),
        ({"presence_penalty": 3}, "presence_penalty"),
    ]
    for kwargs, says in bad:
        with pytest.raises(InvalidRequestError, match=says):
            build_call(limits, model="m", messages=[("user", "hi")], **kwargs)  # type: ignore[arg-type]


def test_a_tool_result_must_answer_an_earlier_call() -> None:
    limits = Limits(max_prompt_chars=1000, max_messages=10)
    call_turn = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    ok = build_call(limits, model="m", tools=[WEATHER], messages=[
        ("user", "hi"), call_turn, {"role": "tool", "tool_call_id": "c1", "content": "sunny"}])
    assert [m["role"] for m in ok.messages] == ["user", "assistant", "tool"]
    with pytest.raises(InvalidRequestError, match="no earlier assistant message made"):
        build_call(limits, model="m", messages=[("user", "hi"), {"role": "tool", "tool_call_id": "c9", "content": "x"}])
    with pytest.raises(InvalidRequestError, match="no tool_call_id"):
        build_call(limits, model="m", messages=[("user", "hi"), {"role": "tool", "content": "x"}])


def test_the_cache_key_covers_tools_tool_choice_and_formats() -> None:
    cache = ResponseCache(None, ttl_s=60)  # type: ignore[arg-type]  # key() does no I/O
    messages = ({"role": "user", "content": "hi"},)
    keys = {cache.key("m", messages, params) for params in (
        Params(temperature=0), Params(temperature=0, tools=(WEATHER,)),
        Params(temperature=0, tools=(WEATHER,), tool_choice="required"),
        Params(temperature=0, response_format=ResponseFormat("json_object")),
        Params(temperature=0, response_format=ResponseFormat("json_schema", '{"type": "object"}')),
        Params(temperature=0, stop=("x",)),
    )}
    assert len(keys) == 6
    with_call = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    assert cache.key("m", with_call, Params(temperature=0)) != cache.key("m", messages, Params(temperature=0))
def _prioritised(concurrency: int, share: float, queue: int = 4) -> Backend:
    backend = _backend("p", {"m"}, concurrency=concurrency, queue=queue)
    backend.interactive_share = share
    return backend


def test_a_share_of_slots_is_kept_for_interactive_calls() -> None:
    assert [_prioritised(n, 0.25).background_limit for n in (1, 2, 4, 8)] == [1, 1, 3, 6]
    assert [_prioritised(n, 0.0).background_limit for n in (1, 4)] == [1, 4]
    assert _prioritised(4, 0.99).background_limit == 1  # background work is never starved outright


async def test_background_calls_hold_at_most_their_share_and_time_out_when_it_is_taken() -> None:
    backend = _prioritised(2, 0.5)
    async with backend.slot(5, background=True):
        with pytest.raises(QueueFullError):  # the other slot is kept for people
            async with backend.slot(0.05, background=True):
                pass
        async with backend.slot(0.05):  # and a person gets it at once
            assert (backend.in_flight, backend.background_in_flight) == (2, 1)
    counts = (backend.in_flight, backend.background_in_flight, backend.waiting, backend.background_waiting)
    assert counts == (0, 0, 0, 0)


async def test_a_waiting_interactive_call_is_served_before_waiting_background_calls() -> None:
    backend = _prioritised(1, 0.0)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, background: bool) -> None:
        async with backend.slot(5, background=background):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(hold("first", True))
    await asyncio.sleep(0)
    waiting_background = asyncio.create_task(hold("background", True))
    await asyncio.sleep(0)
    waiting_person = asyncio.create_task(hold("person", False))  # arrives last
    await asyncio.sleep(0)
    assert (backend.waiting, backend.background_waiting) == (1, 1)
    release.set()
    await asyncio.gather(first, waiting_background, waiting_person)
    assert order == ["first", "person", "background"]
