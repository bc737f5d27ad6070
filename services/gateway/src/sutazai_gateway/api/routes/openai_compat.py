"""OpenAI-compatible endpoints (``/v1``): existing OpenAI clients use the platform by changing their base URL
and passing a platform API key as their ``api_key``. Translation to ``sutazai.chat.v1`` only."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Any, Literal

import grpc
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sutazai.chat.v1 import chat_pb2

from sutazai_gateway import chat_client
from sutazai_gateway.api.deps import CurrentUser, StateDep, call_metadata
from sutazai_gateway.chat_client import chat_request, problem_of, stub

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]] = Field(max_length=200_000)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # fields we do not support (tools, n, ...) are ignored

    model: str = Field(max_length=200)
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def to_grpc(self) -> chat_pb2.ChatRequest:
        return chat_request(
            messages=[("system" if m.role == "developer" else m.role, m.text()) for m in self.messages],
            model=self.model, temperature=self.temperature, seed=self.seed,
            max_tokens=self.max_completion_tokens or self.max_tokens,
        )


def _usage(reply: chat_pb2.ChatResponse) -> dict[str, int]:
    p, c = reply.usage.prompt_tokens, reply.usage.completion_tokens
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: CompletionBody, user: CurrentUser, state: StateDep) -> Any:
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        return await _stream(body, call_metadata(user), state, completion_id, created)
    try:
        reply = await stub(state).Chat(body.to_grpc(), metadata=call_metadata(user), timeout=chat_client.CHAT_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": reply.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.response},
                     "finish_reason": reply.finish_reason or "stop", "logprobs": None}],
        "usage": _usage(reply), "system_fingerprint": reply.backend,
    }


async def _stream(
    body: CompletionBody, metadata: Any, state: StateDep, completion_id: str, created: int
) -> StreamingResponse:
    call, first = await chat_client.open_stream(state, body.to_grpc(), metadata)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict[str, str], finish: str | None, model: str, usage: object = None) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if delta
                or finish else [], "usage": usage}
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

    async def events():  # type: ignore[no-untyped-def]
        role_sent = False
        try:
            async for part in chat_client.chunks(call, first):
                if part.WhichOneof("kind") == "token":
                    delta = {"content": part.token} if role_sent else {"role": "assistant", "content": part.token}
                    role_sent = True
                    yield chunk(delta, None, body.model)
                else:
                    yield chunk({}, part.done.finish_reason or "stop", part.done.model)
                    if include_usage:
                        yield chunk({}, None, part.done.model, _usage(part.done))
        except grpc.aio.AioRpcError as exc:
            problem = problem_of(exc)
            error = {"error": {"message": problem.detail, "type": "server_error", "code": problem.status_code}}
            yield f"data: {json.dumps(error)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(min_length=1)
    model: str = Field("", max_length=200)
    encoding_format: Literal["float", "base64"] = "float"


@router.post("/embeddings")
async def embeddings(body: EmbeddingsBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    reply = await chat_client.embed(state, user, inputs, body.model)

    def encode(values: Any) -> Any:
        if body.encoding_format == "base64":  # little-endian float32, as OpenAI sends it
            return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        return list(values)

    return {
        "object": "list", "model": reply.model,
        "data": [{"object": "embedding", "index": i, "embedding": encode(e.values)}
                 for i, e in enumerate(reply.embeddings)],
        "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
    }


@router.get("/models")
async def models(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    reply = await chat_client.list_models(state, user)
    names: dict[str, str] = {}
    for m in reply.models:
        for name in (m.name, *m.aliases):
            names.setdefault(name, m.backend)
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": b}
                                       for n, b in sorted(names.items())]}
