"""The chat servicer over gRPC against real llama.cpp servers and the machine's Redis."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sutazai.chat.v1 import chat_pb2

MODEL = "SmolLM2-135M-Instruct"


def _req(text: str, **kw: object) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(messages=[chat_pb2.Message(role="user", content=text)], **kw)  # type: ignore[arg-type]


async def test_chat_through_the_alias_answers_with_usage(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        reply = await chat.stub.Chat(_req("Say hello.", model="tinyllama", max_tokens=16), timeout=60)
    assert reply.response.strip()
    assert reply.model == MODEL and reply.backend == "a" and not reply.cached
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 16
    assert reply.duration_ms > 0


async def test_stream_sends_tokens_then_a_final_chunk_with_usage(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        request = _req("Count to five.", max_tokens=24, temperature=0)
        chunks = [c async for c in chat.stub.ChatStream(request, timeout=60)]
    tokens = [c.token for c in chunks if c.WhichOneof("kind") == "token"]
    assert len(tokens) >= 2
    assert chunks[-1].WhichOneof("kind") == "done"
    done = chunks[-1].done
    assert done.response == "".join(tokens)
    # llama.cpp's server reports no usage when streaming: completion tokens are counted, prompt tokens unknown (0).
    assert done.usage.completion_tokens >= len(tokens) - 1 and done.usage.prompt_tokens >= 0
    assert done.backend == "a" and done.finish_reason in ("stop", "length")


@pytest.mark.parametrize(
    ("request_", "code", "says"),
    [
        (_req("hi", model="no-such-model"), grpc.StatusCode.NOT_FOUND, "available models: SmolLM2-135M-Instruct"),
        (_req("   "), grpc.StatusCode.INVALID_ARGUMENT, "the message is empty"),
        (chat_pb2.ChatRequest(), grpc.StatusCode.INVALID_ARGUMENT, "no user message"),
        (_req("x" * 2001), grpc.StatusCode.INVALID_ARGUMENT, "the limit is 2000"),
        (_req("hi", temperature=5), grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
        (chat_pb2.ChatRequest(messages=[chat_pb2.Message(role="robot", content="hi")]),
         grpc.StatusCode.INVALID_ARGUMENT, "role 'robot'"),
    ],
)
async def test_bad_input_is_refused_and_never_reaches_the_model_server(  # type: ignore[no-untyped-def]
    ensure_up, make_chat, spec, request_, code, says
) -> None:
    a, _ = ensure_up
    async with make_chat([spec("a", a)], max_prompt_chars=2000) as chat:
        before = a.requests()
        for call in (chat.stub.Chat, _stream(chat.stub)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request_, timeout=30)
            assert caught.value.code() == code
            assert says in (caught.value.details() or "")
        assert a.requests() == before


def _stream(stub):  # type: ignore[no-untyped-def]
    async def call(request, **kw):  # type: ignore[no-untyped-def]
        return [c async for c in stub.ChatStream(request, **kw)]

    return call


async def test_deterministic_reply_is_cached_and_the_model_server_not_asked_again(  # type: ignore[no-untyped-def]
    ensure_up, make_chat, spec
) -> None:
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        request = _req("Name a colour.", temperature=0, max_tokens=12, use_cache=True)
        first = await chat.stub.Chat(request, timeout=60)
        before = a.requests()
        second = await chat.stub.Chat(request, timeout=60)
        streamed = [c async for c in chat.stub.ChatStream(request, timeout=60)]
        assert a.requests() == before  # neither reached the server
        assert not first.cached and second.cached and streamed[-1].done.cached
        assert second.response == first.response == streamed[-1].done.response
        assert second.usage.tokens_per_second == first.usage.tokens_per_second  # the rate it was generated at
        # Not deterministic (no temperature 0, no seed), or use_cache off: always asks the model.
        await chat.stub.Chat(_req("Name a colour.", max_tokens=4, use_cache=True), timeout=60)
        await chat.stub.Chat(_req("Name a colour.", temperature=0, max_tokens=12, use_cache=False), timeout=60)
        assert a.requests() == before + 2
        stats = await chat.stub.GetCacheStats(chat_pb2.CacheStatsRequest(), timeout=10)
    # Only the deterministic look-ups count: one miss (the first call), two hits.
    assert (stats.gets, stats.hits, stats.misses, stats.sets) == (3, 2, 1, 1)
    assert [(m.model, m.hits, m.misses) for m in stats.models] == [(MODEL, 2, 1)]
    assert stats.hit_rate == pytest.approx(2 / 3) and stats.redis_server["used_memory"] > 0


async def test_a_stream_cut_short_is_not_cached(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        request = _req("Tell a long story about a dragon.", temperature=0, max_tokens=200, use_cache=True)
        call = chat.stub.ChatStream(request, timeout=60)
        async for chunk in call:
            assert chunk.token
            break
        call.cancel()
        async with asyncio.timeout(10):  # the cancelled stream gives its backend slot back: it has ended
            while chat.service.router.backends[0].in_flight:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        stats = await chat.stub.GetCacheStats(chat_pb2.CacheStatsRequest(), timeout=10)
        assert stats.sets == 0


async def test_list_models_shows_each_backend_and_the_aliases(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, b = ensure_up
    async with make_chat([spec("a", a), spec("b", b)]) as chat:
        listed = await chat.stub.ListModels(chat_pb2.ListModelsRequest(), timeout=10)
    assert sorted((m.name, m.backend) for m in listed.models) == [(MODEL, "a"), (MODEL, "b")]
    assert all("tinyllama" in m.aliases for m in listed.models)


async def test_batch_answers_each_item_in_order_with_its_own_error(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        items = [_req("Say one.", max_tokens=6), _req(""), _req("hi", model="nope"), _req("Say two.", max_tokens=6)]
        reply = await chat.stub.Batch(chat_pb2.BatchRequest(items=items, concurrency=2), timeout=120)
        with pytest.raises(grpc.aio.AioRpcError) as too_many:
            await chat.stub.Batch(chat_pb2.BatchRequest(items=[_req("x")] * 51), timeout=10)
    assert [r.index for r in reply.results] == [0, 1, 2, 3]
    assert reply.results[0].response.response and reply.results[3].response.response
    assert reply.results[1].error.startswith("INVALID_ARGUMENT") and reply.results[2].error.startswith("NOT_FOUND")
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_full_queue_answers_resource_exhausted_with_retry_after(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, _ = ensure_up
    async with make_chat([spec("a", a, concurrency=1)], queue_size=1) as chat:
        request = _req("Write a poem about the sea.", max_tokens=48)
        calls = [chat.stub.Chat(request, timeout=60) for _ in range(4)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(refused) == 2, outcomes  # one running, one waiting, two refused
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(error.trailing_metadata() or ())["retry-after"] == "1"


async def test_analyze_returns_json_valid_for_its_schema(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        reply = await chat.stub.Analyze(
            chat_pb2.AnalyzeRequest(text="I love this phone, the battery is great!", analysis_type="sentiment"),
            timeout=120,
        )
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await chat.stub.Analyze(chat_pb2.AnalyzeRequest(text="x", analysis_type="horoscope"), timeout=10)
    assert reply.success and reply.analysis_type == "sentiment"
    assert reply.result["sentiment"] in ("positive", "negative", "neutral", "mixed")
    assert 0 <= reply.result["confidence"] <= 1
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_metrics_count_requests_tokens_and_time_to_first_token_per_model_and_backend(  # type: ignore[no-untyped-def]
    ensure_up, make_chat, spec
) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    a, _ = ensure_up
    async with make_chat([spec("metered", a)]) as chat:
        await chat.stub.Chat(_req("Say hi.", max_tokens=6, temperature=0), timeout=60)
        _ = [c async for c in chat.stub.ChatStream(_req("Write a poem.", max_tokens=8, temperature=0), timeout=60)]
    labels = {"model": MODEL, "backend": "metered"}
    assert sample("sutazai_chat_requests_total", operation="chat", outcome="ok", **labels) == 1
    assert sample("sutazai_chat_requests_total", operation="chat_stream", outcome="ok", **labels) == 1
    assert sample("sutazai_chat_time_to_first_token_seconds_count", **labels) == 1
    assert sample("sutazai_chat_tokens_total", kind="completion", **labels) >= 2
    assert sample("sutazai_chat_tokens_per_second_count", **labels) >= 1
    assert sample("sutazai_chat_in_flight", backend="metered") == 0


async def test_a_request_arriving_during_a_stream_does_not_cut_it_short(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    """llama.cpp's server interrupts the reply in progress when another request arrives, unless started with
    ``--interrupt_requests false`` (as the stack does): health probes must not truncate replies."""
    import urllib.request

    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        request = _req("Write a very long story about the sea.", max_tokens=48, temperature=0)
        call = chat.stub.ChatStream(request, timeout=60)
        chunks = [await call.read()]
        models = asyncio.get_running_loop().run_in_executor(
            None, lambda: urllib.request.urlopen(a.url + "/v1/models", timeout=30).read())
        while (chunk := await call.read()) is not grpc.aio.EOF:
            chunks.append(chunk)
        await models
    done = chunks[-1].done
    assert done.finish_reason == "length" and done.usage.completion_tokens == 48


BACKGROUND = (("sutazai-priority", "background"),)


async def test_background_calls_keep_a_slot_free_for_people_and_say_so_in_capacity(  # type: ignore[no-untyped-def]
    ensure_up, make_chat, spec
) -> None:
    """Two slots, half kept for interactive calls: one background stream holds the background share; a second
    background call waits briefly, then gets chat's own RESOURCE_EXHAUSTED (tagged, so a worker puts its task
    back); a person's call meanwhile takes the kept slot at once."""
    a, _ = ensure_up
    async with make_chat([spec("a", a, concurrency=2)], interactive_share=0.5, background_wait_s=0.3) as chat:
        stream = chat.stub.ChatStream(_req("Write a long story about the sea.", max_tokens=48, temperature=0),
                                      metadata=BACKGROUND, timeout=60)
        await stream.read()  # the first token: the background call holds its slot
        capacity = {m.model: m for m in (await chat.stub.GetCapacity(chat_pb2.CapacityRequest(), timeout=5)).models}
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await chat.stub.Chat(_req("Say one.", max_tokens=4), metadata=BACKGROUND, timeout=30)
        person = await chat.stub.Chat(_req("Say hi.", max_tokens=4), timeout=60)
        while await stream.read() is not grpc.aio.EOF:
            pass
        after = {m.model: m for m in (await chat.stub.GetCapacity(chat_pb2.CapacityRequest(), timeout=5)).models}
    for name in (MODEL, "tinyllama"):  # each served model and each alias of it
        c = capacity[name]
        assert (c.slots, c.background_slots, c.in_flight, c.background_in_flight) == (2, 1, 1, 1)
        assert (after[name].in_flight, after[name].background_in_flight) == (0, 0)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(refused.value.trailing_metadata() or ())["sutazai-error"] == "OverloadedError"
    assert person.response
