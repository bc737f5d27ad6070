"""Translation between the REST surfaces of chat (ours, OpenAI's, Ollama's) and ``sutazai.chat.v1``.

No domain logic: requests become ``ChatRequest`` messages, gRPC errors become problem responses. The
chat service sets trailing metadata on its own errors (``retry-after``, ``available-models``), so that a
429 carries ``Retry-After`` and a 404 names the models a client may use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from fastapi import HTTPException
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.identity import Identity

from sutazai_gateway.api.deps import GatewayState
from sutazai_gateway.grpc_errors import http_exception

# Deadlines of calls to the chat service (a generation may take a while; a cache hit does not).
CHAT_TIMEOUT_S = 300.0
STREAM_TIMEOUT_S = 900.0
BATCH_TIMEOUT_S = 900.0
QUICK_TIMEOUT_S = 10.0


def stub(state: GatewayState) -> chat_pb2_grpc.ChatServiceStub:
    """The chat service's stub, made once per upstream (its calls pass the chat breaker)."""
    return state.upstreams["chat"].stub(chat_pb2_grpc.ChatServiceStub)


def problem_of(exc: grpc.aio.AioRpcError) -> HTTPException:
    """The HTTP problem for a chat error; the chat service's own messages are shown as they are."""
    trailing = {k: v for k, v in (exc.trailing_metadata() or ()) if isinstance(v, str)}
    if "sutazai-error" not in trailing:
        return http_exception("chat", exc)  # the service itself is unreachable or failed
    base = http_exception("chat", exc)
    headers = dict(base.headers or {})
    if "retry-after" in trailing:
        headers["Retry-After"] = trailing["retry-after"]
    return HTTPException(base.status_code, exc.details() or exc.code().name, headers=headers or None)


def chat_request(
    *, messages: Sequence[tuple[str, str] | chat_pb2.Message], model: str, use_cache: bool = True,
    temperature: float | None = None, max_tokens: int | None = None, system: str = "", agent_id: str = "",
    seed: int | None = None,
) -> chat_pb2.ChatRequest:
    request = chat_pb2.ChatRequest(
        messages=[m if isinstance(m, chat_pb2.Message) else chat_pb2.Message(role=m[0], content=m[1])
                  for m in messages],
        model=model, use_cache=use_cache, system=system, agent_id=agent_id,
    )
    if temperature is not None:
        request.temperature = temperature
    if max_tokens is not None:
        request.max_tokens = max_tokens
    if seed is not None:
        request.seed = seed
    return request


def reply_dict(reply: chat_pb2.ChatResponse) -> dict[str, Any]:
    return {
        "response": reply.response,
        "model": reply.model,
        "cached": reply.cached,
        "usage": {
            "prompt_tokens": reply.usage.prompt_tokens,
            "completion_tokens": reply.usage.completion_tokens,
            "tokens_per_second": reply.usage.tokens_per_second,
        },
        "backend": reply.backend,
        "duration_ms": reply.duration_ms,
        "finish_reason": reply.finish_reason or "stop",
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls],
    }


async def open_stream(
    state: GatewayState, request: chat_pb2.ChatRequest, metadata: grpc.aio.Metadata | Sequence[tuple[str, str]]
) -> tuple[grpc.aio.UnaryStreamCall, chat_pb2.ChatChunk]:
    """Start ``ChatStream`` and wait for its first chunk, so that an error before any token (unknown model,
    bad input, overload) is an HTTP status rather than an event inside a 200 response."""
    try:
        call = stub(state).ChatStream(request, metadata=metadata, timeout=STREAM_TIMEOUT_S)
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    if first is grpc.aio.EOF:
        raise HTTPException(502, "the chat service ended the stream without a reply")
    return call, first


async def chunks(call: grpc.aio.UnaryStreamCall, first: chat_pb2.ChatChunk) -> AsyncIterator[chat_pb2.ChatChunk]:
    """The stream's chunks starting with ``first``. Leaving early (the client went away) cancels the call,
    which cancels the request to the model server."""
    try:
        yield first
        while (chunk := await call.read()) is not grpc.aio.EOF:
            yield chunk
    finally:
        call.cancel()


async def embed(state: GatewayState, identity: Identity, inputs: list[str], model: str) -> chat_pb2.EmbedResponse:
    """Embeddings for the OpenAI and Ollama routes alike; gRPC errors become problems."""
    try:
        return await stub(state).Embed(chat_pb2.EmbedRequest(inputs=inputs, model=model),
                                       metadata=identity.to_metadata(), timeout=CHAT_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc


async def list_models(state: GatewayState, identity: Identity) -> chat_pb2.ListModelsResponse:
    """The served models, for the platform's, the OpenAI and the Ollama model listings alike; from the API
    cache (tag ``models``, the same for every caller) while it holds them."""
    cache = state.api_cache
    lookup = await cache.get("models", ("models",)) if cache is not None else None
    if lookup is not None and lookup.hit:
        return chat_pb2.ListModelsResponse.FromString(lookup.body)
    try:
        reply = await stub(state).ListModels(chat_pb2.ListModelsRequest(), metadata=identity.to_metadata(),
                                             timeout=QUICK_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    if cache is not None and lookup is not None:
        await cache.put(lookup, reply.SerializeToString())
    return reply
