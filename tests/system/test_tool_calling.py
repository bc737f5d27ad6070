"""Tool calling and structured output through the gateway, on the local model, with the clients agent
frameworks use: LangChain's ``ChatOpenAI``, the official ``openai`` and ``ollama`` clients. The 135M model
is weak, so the tests force the tool (a grammar then constrains the arguments) or give a schema."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from pydantic import BaseModel, Field

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system
NONCE = f"(run {time.time_ns()})"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather", "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Answer(BaseModel):
    # maxLength is part of the grammar the model server enforces: the 135M model once wrote a 200-character
    # "city" and max_tokens cut the JSON mid-string (a fresh-clone CI run, 2026-12-06)
    city: str = Field(max_length=40)
    population: int


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    # A generation on this shared 2-core machine can take minutes: a long backend deadline, not a flaky 503.
    with run_stack(tmp_path_factory.mktemp("tools-stack"), stack_servers, timeout_s=600,
                   SUTAZAI_CHAT_REQUEST_TIMEOUT_S="600", SUTAZAI_START_TIMEOUT_S="300") as running:
        yield running


@pytest.fixture(scope="module")
def key(stack: RunningStack) -> str:
    key = stack.secrets["admin_api_key"]
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": key}, timeout=30) as client:
        assert wait_until(lambda: client.get("/api/v1/models").status_code == 200, 60)
    return key


@pytest.fixture(scope="module")
def client(stack: RunningStack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, timeout=180, max_retries=0)


def test_langchain_structured_output_with_a_json_schema_returns_a_valid_object(stack: RunningStack, key: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="tinyllama", base_url=stack.url + "/v1", api_key=key, temperature=0, max_tokens=60,
                     timeout=180, max_retries=0)
    answer = llm.with_structured_output(Answer, method="json_schema").invoke(
        f"Which is the largest city of France, and how many people live there? {NONCE}")
    assert isinstance(answer, Answer) and answer.city


def test_langchain_bind_tools_with_a_forced_tool_returns_the_tool_call(stack: RunningStack, key: str) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return "sunny"

    llm = ChatOpenAI(model="tinyllama", base_url=stack.url + "/v1", api_key=key, temperature=0, max_tokens=40,
                     timeout=180, max_retries=0)
    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(f"Weather in Paris? {NONCE}")
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    assert isinstance(message.tool_calls[0]["args"].get("city"), str)


def _round_trip(client: openai.OpenAI, *, stream: bool) -> tuple[str, str]:
    """Call (forced) -> tool message -> final answer; returns (the call's arguments, the final text)."""
    messages: list[dict] = [{"role": "user", "content": f"What is the weather in Paris? {NONCE} {stream}"}]  # type: ignore[type-arg]
    forced = {"type": "function", "function": {"name": "get_weather"}}
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in client.chat.completions.create(model="tinyllama", messages=messages, tools=[WEATHER],
                                                    tool_choice=forced, max_tokens=40, temperature=0, stream=True):
            if not chunk.choices:
                continue
            for piece in chunk.choices[0].delta.tool_calls or ():
                entry = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = piece.id or entry["id"]
                entry["name"] = (piece.function.name if piece.function and piece.function.name else entry["name"])
                entry["arguments"] += piece.function.arguments or "" if piece.function else ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls" and list(calls) == [0]
        call_id, name, arguments = calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
    else:
        reply = client.chat.completions.create(model="tinyllama", messages=messages, tools=[WEATHER],
                                               tool_choice=forced, max_tokens=40, temperature=0)
        assert reply.choices[0].finish_reason == "tool_calls"
        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        call_id, name, arguments = call.id, call.function.name, call.function.arguments  # type: ignore[union-attr]
    assert name == "get_weather" and call_id
    assert isinstance(json.loads(arguments)["city"], str)
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 degrees Celsius."},
    ]
    if stream:
        final = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="tinyllama", messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=30,
            temperature=0, stream=True) if c.choices)
    else:
        done = client.chat.completions.create(model="tinyllama", messages=messages, tools=[WEATHER],
                                              tool_choice="none", max_tokens=30, temperature=0)
        assert done.choices[0].finish_reason in ("stop", "length") and not done.choices[0].message.tool_calls
        final = done.choices[0].message.content or ""
    return arguments, final


@pytest.mark.timeout(900)  # several generations on a shared 2-core machine
def test_openai_client_tool_call_round_trip(client: openai.OpenAI) -> None:
    _, final = _round_trip(client, stream=False)
    assert final.strip()


@pytest.mark.timeout(900)  # several generations on a shared 2-core machine
def test_openai_client_tool_call_round_trip_streamed(client: openai.OpenAI) -> None:
    _, final = _round_trip(client, stream=True)
    assert final.strip()


@pytest.mark.timeout(900)  # one generation, but on a shared 2-core machine it has taken minutes
def test_openai_client_json_schema_response_format(client: openai.OpenAI) -> None:
    # The grammar keeps raw control characters out of strings (model_server.py): the 135M model used to leave
    # the JSON mid-string for lines of prose until max_tokens cut the reply short (invalid JSON).
    reply = client.chat.completions.create(
        model="tinyllama", messages=[{"role": "user", "content": f"Name a city and its population. {NONCE}"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "strict": True,
                                                                 "schema": Answer.model_json_schema()}},
        max_tokens=60, temperature=0)
    Answer.model_validate_json(reply.choices[0].message.content or "")


@pytest.mark.timeout(900)  # several generations on a shared 2-core machine
def test_ollama_client_gets_json_for_a_schema_and_a_tool_call_for_tools(stack: RunningStack, key: str) -> None:
    client = ollama.Client(host=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=180)
    prompt = f"A city and its population. {NONCE}"
    reply = client.chat(model="tinyllama", messages=[{"role": "user", "content": prompt}],
                        format=Answer.model_json_schema(), options={"num_predict": 40, "temperature": 0})
    Answer.model_validate_json(reply.message.content or "")
    # Ollama has no tool_choice: with one tool, the platform's local model is asked for it ("required").
    called = client.chat(model="tinyllama", tools=[WEATHER], options={"num_predict": 40, "temperature": 0},
                         messages=[{"role": "user", "content": f"Use get_weather for Paris. {NONCE}"}])
    assert called.message.tool_calls and called.message.tool_calls[0].function.name == "get_weather"
    assert isinstance(called.message.tool_calls[0].function.arguments, dict)
    assert client.ps() is not None and client.show("tinyllama") is not None
    version = httpx.get(stack.url + "/api/version", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert version.status_code == 200 and version.json()["version"]
    legacy = httpx.post(stack.url + "/api/embeddings", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                        json={"model": "nomic-embed-text", "prompt": "hello"})
    assert legacy.status_code == 200 and len(legacy.json()["embedding"]) == 384


@pytest.mark.timeout(900)  # several generations on a shared 2-core machine
def test_rest_chat_takes_response_format_and_tools(stack: RunningStack, key: str) -> None:
    with httpx.Client(base_url=stack.url, headers={"X-API-Key": key}, timeout=180) as api:
        forced = api.post("/api/v1/chat", json={
            "message": f"Weather in Rome? {NONCE}", "tools": [WEATHER], "max_tokens": 40, "temperature": 0,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
        assert forced.status_code == 200, forced.text
        body = forced.json()
        assert body["finish_reason"] == "tool_calls" and body["tool_calls"][0]["name"] == "get_weather"
        structured = api.post("/api/v1/chat", json={
            "message": f"A city and its population. {NONCE}", "max_tokens": 60, "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "a",
                                                                       "schema": Answer.model_json_schema()}}})
        assert structured.status_code == 200, structured.text
        Answer.model_validate_json(structured.json()["response"])


def test_unsupported_or_bad_tool_input_gets_a_400_problem(stack: RunningStack, key: str) -> None:
    headers = {"X-API-Key": key}
    base = {"model": "tinyllama", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        ({**base, "n": 2}, "n > 1"),
        ({**base, "logprobs": True}, "logprobs"),
        ({**base, "functions": [{"name": "f"}]}, "use 'tools'"),
        ({**base, "frobnicate": 1}, "unsupported parameter(s): frobnicate"),
        ({**base, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "'nope', which is not among the tools"),
        ({**base, "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "x",
                                                                   "content": "r"}]}, "no earlier assistant"),
        ({**base, "tool_choice": "required"}, "needs tools"),
    ]
    for body, says in cases:
        reply = httpx.post(stack.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert says in reply.json()["detail"], reply.text
