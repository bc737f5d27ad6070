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
from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sutazai.chat.v1 import chat_pb2

from sutazai_gateway import chat_client
from sutazai_gateway.api.deps import CurrentUser, StateDep, call_metadata
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.chat_client import chat_request, problem_of, stub
from sutazai_gateway.chat_tools import (
    ResponseFormatBody,
    ToolCallBody,
    ToolChoiceBody,
    ToolDef,
    format_pb,
    openai_tool_calls,
    set_tool_choice,
    tool_calls_pb,
    tools_pb,
)
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/v1", tags=["openai-compatible"])


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. "refusal", "audio": null on an assistant turn sent back

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = Field(None, max_length=200_000)
    tool_calls: list[ToolCallBody] | None = Field(None, max_length=128)
    tool_call_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=64)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")

    def to_grpc(self) -> chat_pb2.Message:
        return chat_pb2.Message(role="system" if self.role == "developer" else self.role, content=self.text(),
                                tool_calls=tool_calls_pb(self.tool_calls), tool_call_id=self.tool_call_id or "",
                                name=self.name if self.role == "tool" and self.name else "")


class StreamOptions(BaseModel):
    include_usage: bool = False


# Accepted and ignored: they change nothing a local model server could honour.
IGNORED = frozenset({"user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"})


class CompletionBody(BaseModel):
    # Unknown fields are kept so that ``unsupported`` can name them: a 400, never silently dropped.
    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=200)
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: ToolChoiceBody | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatBody | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None

    def unsupported(self) -> str | None:
        """Why the platform cannot honour this request, or None."""
        if self.n not in (None, 1):
            return "n > 1 is not supported: ask once per choice"
        if self.logprobs or self.top_logprobs:
            return "logprobs and top_logprobs are not supported"
        if self.logit_bias:
            return "logit_bias is not supported"
        if self.response_format is not None and self.response_format.type == "json_schema" \
                and self.response_format.json_schema is None:
            return "response_format of type json_schema needs 'json_schema' with a 'schema'"
        extra = sorted(set(self.model_extra or {}) - IGNORED)
        if "functions" in extra or "function_call" in extra:
            return "'functions' and 'function_call' are not supported: use 'tools' and 'tool_choice'"
        if extra:
            return f"unsupported parameter(s): {', '.join(extra)}"
        return None

    def to_grpc(self) -> chat_pb2.ChatRequest:
        request = chat_request(
            messages=[m.to_grpc() for m in self.messages],
            model=self.model, temperature=self.temperature, seed=self.seed,
            max_tokens=self.max_completion_tokens or self.max_tokens,
        )
        for name in ("top_p", "presence_penalty", "frequency_penalty", "parallel_tool_calls"):
            if (value := getattr(self, name)) is not None:
                setattr(request, name, value)
        if self.stop:
            request.stop.extend([self.stop] if isinstance(self.stop, str) else self.stop)
        request.tools.extend(tools_pb(self.tools))
        set_tool_choice(request, self.tool_choice)
        if (fmt := format_pb(self.response_format)) is not None:
            request.response_format.CopyFrom(fmt)
        return request


def _usage(reply: chat_pb2.ChatResponse) -> dict[str, int]:
    p, c = reply.usage.prompt_tokens, reply.usage.completion_tokens
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


@router.post("/chat/completions", response_model=None,
             responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def chat_completions(body: CompletionBody, user: CurrentUser, state: StateDep) -> Any:
    if (reason := body.unsupported()) is not None:
        raise HTTPException(400, reason)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        return await _stream(body, call_metadata(user), state, completion_id, created)
    try:
        reply = await stub(state).Chat(body.to_grpc(), metadata=call_metadata(user), timeout=chat_client.CHAT_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    message: dict[str, Any] = {"role": "assistant", "content": reply.response if reply.response or not
                               reply.tool_calls else None}
    if reply.tool_calls:
        message["tool_calls"] = openai_tool_calls(reply.tool_calls)
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": reply.model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": reply.finish_reason or "stop", "logprobs": None}],
        "usage": _usage(reply), "system_fingerprint": reply.backend,
    }


async def _stream(
    body: CompletionBody, metadata: Any, state: StateDep, completion_id: str, created: int
) -> StreamingResponse:
    call, first = await chat_client.open_stream(state, body.to_grpc(), metadata)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict[str, Any], finish: str | None, model: str, usage: object = None) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if delta
                or finish else [], "usage": usage}
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

    async def events():  # type: ignore[no-untyped-def]
        role_sent = False
        try:
            async for part in chat_client.chunks(call, first):
                kind = part.WhichOneof("kind")
                if kind == "token":
                    delta: dict[str, Any] = {"content": part.token}
                elif kind == "tool_call":
                    # As OpenAI streams them: id, type and name with the first piece of a call, then arguments.
                    piece: dict[str, Any] = {"index": part.tool_call.index,
                                             "function": {"arguments": part.tool_call.arguments}}
                    if part.tool_call.id:
                        piece.update(id=part.tool_call.id, type="function")
                    if part.tool_call.name:
                        piece["function"]["name"] = part.tool_call.name
                    delta = {"tool_calls": [piece]}
                else:
                    yield chunk({}, part.done.finish_reason or "stop", part.done.model)
                    if include_usage:
                        yield chunk({}, None, part.done.model, _usage(part.done))
                    continue
                if not role_sent:
                    delta = {"role": "assistant", **({"content": None} if kind == "tool_call" else {}), **delta}
                    role_sent = True
                yield chunk(delta, None, body.model)
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


@router.post("/embeddings", responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
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


@router.get("/models", responses=problem_responses(401, 503, 504))
async def models(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    reply = await chat_client.list_models(state, user)
    names: dict[str, str] = {}
    for m in reply.models:
        for name in (m.name, *m.aliases):
            names.setdefault(name, m.backend)
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": b}
                                       for n, b in sorted(names.items())]}
