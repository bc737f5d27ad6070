"""Chat and models over REST (``/api/v1``), in the original's shapes, extended. Translation to
``sutazai.chat.v1.ChatService`` only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import grpc
import orjson
from fastapi import Body, HTTPException, Query
from fastapi.responses import Response, StreamingResponse
from google.protobuf import json_format, struct_pb2
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sutazai.chat.v1 import chat_pb2

from sutazai_gateway import chat_client
from sutazai_gateway.api.deps import CurrentUser, StateDep, call_metadata
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.chat_client import chat_request, problem_of, reply_dict, stub
from sutazai_gateway.chat_tools import (
    ResponseFormatBody,
    ToolCallBody,
    ToolChoiceBody,
    ToolDef,
    format_pb,
    set_tool_choice,
    tool_calls_pb,
    tools_pb,
)
from sutazai_gateway.problems import problem_responses
from sutazai_gateway.responses import json_response

router = PrefixedRouter(prefix="/api/v1", tags=["chat"])


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"] = "user"
    content: str = Field("", max_length=200_000)
    tool_calls: list[ToolCallBody] | None = Field(None, max_length=128, description="assistant: the calls it made")
    tool_call_id: str | None = Field(None, max_length=200, description="tool: the call this result answers")

    def to_grpc(self) -> chat_pb2.Message:
        return chat_pb2.Message(role=self.role, content=self.content, tool_calls=tool_calls_pb(self.tool_calls),
                                tool_call_id=self.tool_call_id or "")


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("tinyllama", max_length=200)
    use_cache: bool = True
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    seed: int | None = None
    system: str = Field("", max_length=200_000)


class ChatBody(Sampling):
    message: str | None = Field(None, min_length=1, max_length=200_000)
    messages: list[Message] | None = Field(None, min_length=1, max_length=500)
    agent_id: str = Field("", max_length=64)
    tools: list[ToolDef] | None = Field(None, max_length=128, description="functions the model may call "
                                        "(OpenAI's shape)")
    tool_choice: ToolChoiceBody | None = None
    response_format: ResponseFormatBody | None = Field(
        None, description="json_object, or json_schema with a schema the reply must follow")

    @model_validator(mode="after")
    def _one_of(self) -> ChatBody:
        if (self.message is None) == (self.messages is None):
            raise ValueError("send either 'message' (a string) or 'messages' (a list), not both or neither")
        return self

    def to_grpc(self) -> chat_pb2.ChatRequest:
        messages: list[Any] = [("user", self.message)] if self.message is not None else [
            m.to_grpc() for m in self.messages or ()]
        request = chat_request(messages=messages, model=self.model, use_cache=self.use_cache,
                               temperature=self.temperature, max_tokens=self.max_tokens, system=self.system,
                               agent_id=self.agent_id, seed=self.seed)
        request.tools.extend(tools_pb(self.tools))
        set_tool_choice(request, self.tool_choice)
        if self.response_format is not None and self.response_format.type == "json_schema" \
                and self.response_format.json_schema is None:
            raise HTTPException(400, "response_format of type json_schema needs 'json_schema' with a 'schema'")
        if (fmt := format_pb(self.response_format)) is not None:
            request.response_format.CopyFrom(fmt)
        return request


class GenerateBody(Sampling):
    prompt: str = Field(min_length=1, max_length=200_000)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    tokens_per_second: float


class ReplyToolCall(BaseModel):
    id: str
    name: str
    arguments: str = Field(description="the arguments as JSON text")


class ChatReply(BaseModel):
    response: str
    model: str
    cached: bool
    usage: Usage
    backend: str
    duration_ms: float
    finish_reason: str = Field(description="stop, length or tool_calls")
    tool_calls: list[ReplyToolCall] = []


@router.post("/chat", response_model=ChatReply,
             responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def chat(body: ChatBody, user: CurrentUser, state: StateDep) -> Response:
    try:
        reply = await stub(state).Chat(body.to_grpc(), metadata=call_metadata(user),
                                       timeout=chat_client.CHAT_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    return json_response(reply_dict(reply))  # already in ChatReply's shape: no second validation on the hot path


def _sse(data: object, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {orjson.dumps(data).decode()}\n\n"


@router.post("/chat/stream", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "one `data: {\"token\": ...}` event per token (`event: tool_call` "
                                             "for a piece of a tool call), then `event: done` "
                                             "with usage; `event: error` if the model fails mid-stream"},
                        **problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504)})
async def chat_stream(body: ChatBody, user: CurrentUser, state: StateDep) -> StreamingResponse:
    call, first = await chat_client.open_stream(state, body.to_grpc(), call_metadata(user))

    async def events():  # type: ignore[no-untyped-def]
        try:
            async for chunk in chat_client.chunks(call, first):
                kind = chunk.WhichOneof("kind")
                if kind == "token":
                    yield _sse({"token": chunk.token})
                elif kind == "tool_call":
                    piece = chunk.tool_call
                    yield _sse({"index": piece.index, "id": piece.id, "name": piece.name,
                                "arguments": piece.arguments}, "tool_call")
                else:
                    yield _sse(reply_dict(chunk.done), "done")
        except grpc.aio.AioRpcError as exc:
            problem = problem_of(exc)
            yield _sse({"status": problem.status_code, "detail": problem.detail}, "error")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/generate", response_model=ChatReply,
             responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def generate(body: GenerateBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    request = chat_pb2.GenerateRequest(prompt=body.prompt, model=body.model, use_cache=body.use_cache,
                                       system=body.system)
    if body.temperature is not None:
        request.temperature = body.temperature
    if body.max_tokens is not None:
        request.max_tokens = body.max_tokens
    try:
        reply = await stub(state).Generate(request, metadata=user.to_metadata(), timeout=chat_client.CHAT_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    return reply_dict(reply)


BatchItem = Annotated[str, Field(min_length=1, max_length=2000)] | ChatBody


@router.post("/batch", responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def batch(
    items: Annotated[list[BatchItem], Body(min_length=1, max_length=50)], user: CurrentUser, state: StateDep,
    concurrency: Annotated[int, Query(ge=1, le=16)] = 4,
) -> dict[str, Any]:
    """The original's JSON array of prompts (or of chat objects); one result or error per item, in order."""
    request = chat_pb2.BatchRequest(concurrency=concurrency, items=[
        chat_request(messages=[("user", item)], model="tinyllama") if isinstance(item, str) else item.to_grpc()
        for item in items
    ])
    try:
        reply = await stub(state).Batch(request, metadata=user.to_metadata(), timeout=chat_client.BATCH_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    return {"results": [
        {"index": r.index, "success": True, **reply_dict(r.response)} if r.HasField("response")
        else {"index": r.index, "success": False, "error": r.error}
        for r in reply.results
    ]}


class AnalyzeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=50_000)
    analysis_type: Literal["sentiment", "entities", "summary", "keywords", "language", "full_analysis"] = (
        "full_analysis")
    options: dict[str, Any] = Field(default_factory=dict)
    model: str = Field("", max_length=200)


@router.post("/analyze", responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def analyze(body: AnalyzeBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    options = struct_pb2.Struct()
    options.update(body.options)
    request = chat_pb2.AnalyzeRequest(text=body.text, analysis_type=body.analysis_type, options=options,
                                      model=body.model)
    try:
        reply = await stub(state).Analyze(request, metadata=user.to_metadata(), timeout=chat_client.CHAT_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        raise problem_of(exc) from exc
    return {"success": reply.success, "analysis_type": reply.analysis_type,
            "result": json_format.MessageToDict(reply.result)}


@router.get("/models", responses=problem_responses(401, 503, 504))
async def models(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    reply = await chat_client.list_models(state, user)
    listed = [{"name": m.name, "backend": m.backend, "aliases": list(m.aliases), "loaded": m.loaded}
              for m in reply.models]
    return {"models": listed, "count": len(listed)}
