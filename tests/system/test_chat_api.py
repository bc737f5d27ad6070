"""Chat and models over REST, end to end: gateway → chat → the stack's llama.cpp server and embeddings
server, with the official ``openai`` and ``ollama`` clients pointed at the gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system
MODEL = "SmolLM2-135M-Instruct"
# Sampling at temperature 0 so that the tiny model's replies are not empty by chance; a nonce in each
# prompt so that the response cache does not answer from an earlier test of this module.
NONCE = f"(run {time.time_ns()})"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    # No wait queue in front of the model server's 4 slots, so that a burst shows the 429.
    with run_stack(tmp_path_factory.mktemp("chat-stack"), stack_servers, SUTAZAI_CHAT_QUEUE_SIZE="0") as running:
        yield running


@pytest.fixture(scope="module")
def key(stack: RunningStack) -> str:
    return str(json.loads((stack.home / "secrets.json").read_text())["admin_api_key"])


@pytest.fixture(scope="module")
def api(stack: RunningStack, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": key}, timeout=120) as client:
        # The chat service discovers the model once the model server answers.
        assert wait_until(lambda: client.get("/api/v1/models").status_code == 200, 30)
        yield client


def _model_requests(stack: RunningStack) -> int:
    return Path(stack.home / "logs" / "model_server.log").read_text(errors="replace").count(
        "POST /v1/chat/completions")


def test_chat_answers_with_a_real_generation_in_the_extended_shape(api: httpx.Client) -> None:
    reply = api.post("/api/v1/chat", json={"message": f"Say hello. {NONCE}", "max_tokens": 16, "temperature": 0})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) >= {"response", "model", "cached", "usage", "backend", "duration_ms"}
    assert body["response"].strip() and body["model"] == MODEL and body["cached"] is False
    assert body["usage"]["completion_tokens"] > 0 and body["usage"]["prompt_tokens"] > 0


def test_every_chat_route_needs_a_credential(stack: RunningStack) -> None:
    for method, path in [("POST", "/api/v1/chat"), ("POST", "/api/v1/chat/stream"), ("GET", "/api/v1/models"),
                         ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/api/chat"),
                         ("GET", "/api/tags"), ("GET", "/api/v1/cache/stats")]:
        reply = httpx.request(method, stack.url + path, json={"message": "hi"}, timeout=10)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"


def test_bad_input_gets_a_problem_and_never_reaches_the_model_server(stack: RunningStack, api: httpx.Client) -> None:
    before = _model_requests(stack)
    cases = [
        (api.post("/api/v1/chat", json={"message": ""}), 422, "message"),
        (api.post("/api/v1/chat", json={"message": "   "}), 400, "the message is empty"),
        (api.post("/api/v1/chat", json={"message": "hi", "model": "gpt-17"}), 404,
         f"available models: {MODEL}, all-MiniLM-L6-v2, nomic-embed-text, tinyllama"),
        (api.post("/api/v1/chat", json={"message": "x" * 40_000}), 400, "the limit is 32000"),
        (api.post("/api/v1/chat", content=b'{"message": "hi"', headers={"content-type": "application/json"}),
         422, "json"),
        (api.post("/api/v1/chat", json={"message": "hi", "temperature": 9}), 422, "temperature"),
        (api.post("/api/v1/chat/stream", json={"message": "hi", "model": "gpt-17"}), 404, "available models"),
        (api.post("/api/v1/batch", json=["x" * 2001]), 422, "2000"),
        (api.post("/api/v1/batch", json=["hi"] * 51), 422, "50"),
    ]
    for reply, status, says in cases:
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert says.lower() in reply.text.lower(), reply.text
    assert _model_requests(stack) == before


def test_stream_sends_one_event_per_token_then_usage(api: httpx.Client) -> None:
    body = {"message": f"Count to five. {NONCE}", "max_tokens": 20, "temperature": 0}
    with api.stream("POST", "/api/v1/chat/stream", json=body) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        events = [e for e in reply.read().decode().split("\n\n") if e]
    tokens = [json.loads(e.removeprefix("data: "))["token"] for e in events if e.startswith("data: ")]
    assert len(tokens) >= 2
    assert events[-1].startswith("event: done\n")
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert done["response"] == "".join(tokens) and done["usage"]["completion_tokens"] >= len(tokens) - 1


def test_a_cache_hit_does_not_reach_the_model_server(stack: RunningStack, api: httpx.Client) -> None:
    body = {"message": f"Name a fruit ({time.time()}).", "temperature": 0, "max_tokens": 8}
    earlier = api.get("/api/v1/cache/stats").json()  # the stack's own counters (its own cache prefix)
    first = api.post("/api/v1/chat", json=body).json()
    before = _model_requests(stack)
    second = api.post("/api/v1/chat", json=body).json()
    assert _model_requests(stack) == before
    assert second["cached"] is True and second["response"] == first["response"]
    def counted() -> dict | None:  # type: ignore[type-arg]
        # The cache counts in the background after answering: wait for this exchange's two gets.
        now = api.get("/api/v1/cache/stats").json()
        return now if now["gets"] >= earlier["gets"] + 2 else None

    stats = wait_until(counted, 5)
    assert stats, api.get("/api/v1/cache/stats").json()
    assert set(stats) >= {"gets", "sets", "hits", "misses", "evictions", "hit_rate", "hit_rate_percent",
                          "redis_server"}
    assert set(stats["redis_server"]) == {"keyspace_hits", "keyspace_misses", "used_memory", "connected_clients"}
    assert stats["hits"] == earlier["hits"] + 1 and stats["gets"] == earlier["gets"] + 2
    assert stats["models"][MODEL]["hits"] == earlier.get("models", {}).get(MODEL, {}).get("hits", 0) + 1


def test_generate_batch_analyze_and_models(api: httpx.Client) -> None:
    generated = api.post("/api/v1/generate", json={"prompt": "The sky is", "max_tokens": 8})
    assert generated.status_code == 200 and generated.json()["response"]
    batch = api.post("/api/v1/batch", json=["Say A.", {"message": "Say B.", "max_tokens": 4},
                                            {"message": "x", "model": "nope"}]).json()
    assert [r["index"] for r in batch["results"]] == [0, 1, 2]
    assert batch["results"][0]["success"] and batch["results"][1]["success"], batch
    assert not batch["results"][2]["success"] and batch["results"][2]["error"].startswith("NOT_FOUND")
    analysis = api.post("/api/v1/analyze", json={"text": "I love this!", "analysis_type": "sentiment"}).json()
    assert analysis["success"] and analysis["result"]["sentiment"] in ("positive", "negative", "neutral", "mixed")
    models = api.get("/api/v1/models").json()["models"]
    assert {(m["name"], tuple(m["aliases"])) for m in models} >= {(MODEL, ("tinyllama",))}


def test_a_chat_with_an_agent_id_runs_as_that_agent(api: httpx.Client) -> None:
    reply = api.post("/api/v1/chat", json={"message": f"The cat sat on the mat. {NONCE}", "agent_id": "summarizer",
                                           "max_tokens": 16})
    assert reply.status_code == 200, reply.text
    assert reply.json()["response"] and reply.json()["usage"]["prompt_tokens"] > 40  # the agent's system prompt
    unknown = api.post("/api/v1/chat", json={"message": "hi", "agent_id": "no-such-agent"})
    assert unknown.status_code == 404 and "agent 'no-such-agent' does not exist" in unknown.json()["detail"]


def test_official_openai_client_chats_streams_and_embeds(stack: RunningStack, key: str) -> None:
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=key, timeout=120, max_retries=0)
    reply = client.chat.completions.create(model="tinyllama", messages=[{"role": "user", "content": f"Hi! {NONCE}"}],
                                           max_tokens=12, temperature=0)
    assert reply.choices[0].message.content and reply.usage and reply.usage.completion_tokens > 0
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tinyllama", messages=[{"role": "user", "content": f"Write a poem about the sea. {NONCE}"}],
        max_tokens=12, temperature=0, stream=True) if c.choices]
    assert len([p for p in pieces if p]) >= 2
    embedded = client.embeddings.create(model="all-MiniLM-L6-v2", input=["hello world", "goodbye"])
    assert [len(d.embedding) for d in embedded.data] == [384, 384]
    assert {m.id for m in client.models.list().data} >= {MODEL, "tinyllama", "all-MiniLM-L6-v2"}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=stack.url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_official_ollama_client_chats_streams_and_embeds(stack: RunningStack, key: str) -> None:
    client = ollama.Client(host=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    reply = client.chat(model="tinyllama", messages=[{"role": "user", "content": f"Hi! {NONCE}"}],
                        options={"num_predict": 12, "temperature": 0})
    assert reply.message.content and reply.done and (reply.eval_count or 0) > 0
    prompt = f"Write a poem about the moon. {NONCE}"
    parts = list(client.chat(model="tinyllama", messages=[{"role": "user", "content": prompt}],
                             options={"num_predict": 12, "temperature": 0}, stream=True))
    assert len(parts) >= 3 and parts[-1].done
    generated = client.generate(model="tinyllama", prompt="The sky is", options={"num_predict": 6})
    assert generated.response
    embedded = client.embed(model="nomic-embed-text", input=["hello", "world"])  # the original's name
    assert [len(v) for v in embedded.embeddings] == [384, 384]
    assert {m.model for m in client.list().models} >= {MODEL, "tinyllama"}
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="gpt-17", messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.status_code == 404


def test_a_client_leaving_mid_stream_stops_the_generation(stack: RunningStack, api: httpx.Client) -> None:
    log = stack.home / "logs" / "model_server.log"
    before = log.read_text(errors="replace").count("Disconnected from client")
    with api.stream("POST", "/api/v1/chat/stream",
                    json={"message": f"Write a very long story about the sea. {NONCE}", "max_tokens": 1500,
                          "temperature": 0}) as reply:
        for line in reply.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first token
    assert wait_until(lambda: log.read_text(errors="replace").count("Disconnected from client") > before, 10)


async def test_the_chat_services_ollama_backend_speaks_to_an_ollama_api(stack: RunningStack, key: str) -> None:
    """The ``ollama`` kind of backend (``ollama.AsyncClient``), pointed at the gateway's Ollama-compatible API:
    discovery, chat, stream and embeddings through the official client, with the API key as a bearer token."""
    from sutazai_chat.backend_config import BackendSpec
    from sutazai_chat.backends import Params, make_client

    client = make_client(BackendSpec(name="o", kind="ollama", url=stack.url, api_key=key),
                         connect_timeout_s=3, request_timeout_s=120)
    try:
        assert {MODEL, "tinyllama"} <= set(await client.list_models())
        messages = [{"role": "user", "content": f"Write a poem about rain. {NONCE}"}]
        completion = await client.complete("tinyllama", messages, Params(temperature=0, max_tokens=8))
        assert completion.text and completion.completion_tokens > 0
        deltas = [d async for d in client.stream("tinyllama", messages, Params(temperature=0, max_tokens=8))]
        assert "".join(d.token for d in deltas) == completion.text  # the cached reply, streamed
        assert deltas[-1].finish_reason
        vectors = await client.embed("nomic-embed-text", ["one", "two"])
        assert [len(v) for v in vectors.vectors] == [384, 384]
    finally:
        await client.close()


async def test_a_burst_over_the_backends_limit_gets_429_with_retry_after(stack: RunningStack, key: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url, headers={"X-API-Key": key}, timeout=120) as client:
        body = {"message": f"Write a long story. {NONCE}", "max_tokens": 64, "use_cache": False}
        replies = await asyncio.gather(*(client.post("/api/v1/chat", json=body) for _ in range(8)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses.count(200) >= 4 and 429 in statuses, statuses
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert "concurrency limit" in refused.json()["detail"]


def test_a_model_server_dying_mid_stream_ends_the_stream_with_an_error_event(
    stack: RunningStack, api: httpx.Client
) -> None:
    """Last: it kills the stack's model server."""
    body = {"message": f"Write a very long story about the sea. {NONCE}", "max_tokens": 1500, "temperature": 0,
            "use_cache": False}
    with api.stream("POST", "/api/v1/chat/stream", json=body) as reply:
        assert reply.status_code == 200
        events = []
        for line in reply.iter_lines():
            if line.startswith("data: ") and not events:
                os.kill(int(stack.state["infra"]["model_server"]["pid"]), signal.SIGKILL)
            if line:
                events.append(line)
    assert "event: error" in events, events[-3:]
    error = json.loads(events[events.index("event: error") + 1].removeprefix("data: "))
    assert error["status"] == 503 and "mid-stream" in error["detail"]
