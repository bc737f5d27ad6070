"""gRPC servicer of the chat context: translates messages to the domain and ``errors`` to status codes."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format, struct_pb2
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.identity import current_caller

from sutazai_chat import analyze as analysis
from sutazai_chat.agents import AgentDirectory
from sutazai_chat.errors import (
    AgentNotFoundError,
    BackendError,
    ChatError,
    InvalidOutputError,
    InvalidRequestError,
    ModelNotFoundError,
    NoBackendAvailableError,
    OverloadedError,
)
from sutazai_chat.requests import ChatCall, Limits, Reply, build_call
from sutazai_chat.service import ChatService
from sutazai_chat.tooling import ResponseFormat, Tool, ToolCallDelta

SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]
R = TypeVar("R")
# A call with this metadata is background work (task workers); a call without it is a person's.
PRIORITY_KEY = "sutazai-priority"

_CODES: dict[type[ChatError], grpc.StatusCode] = {
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    AgentNotFoundError: grpc.StatusCode.NOT_FOUND,
    OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NoBackendAvailableError: grpc.StatusCode.UNAVAILABLE,
    BackendError: grpc.StatusCode.UNAVAILABLE,
    InvalidOutputError: grpc.StatusCode.INTERNAL,
}


def status_of(exc: ChatError) -> grpc.StatusCode:
    return next((code for cls, code in _CODES.items() if isinstance(exc, cls)), grpc.StatusCode.INTERNAL)


async def _abort(context: grpc.aio.ServicerContext, exc: ChatError) -> None:
    trailing: list[tuple[str, str]] = [("sutazai-error", type(exc).__name__)]  # the gateway shows our message
    if isinstance(exc, OverloadedError):
        trailing.append(("retry-after", str(exc.retry_after_s)))
    if isinstance(exc, ModelNotFoundError):
        trailing.append(("available-models", ",".join(exc.available)))
    context.set_trailing_metadata(tuple(trailing))
    await context.abort(status_of(exc), str(exc))


def _unary(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    @functools.wraps(method)
    async def wrapper(self: ChatServicer, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except ChatError as exc:
            await _abort(context, exc)
            raise AssertionError("unreachable") from exc

    return wrapper


def is_background(context: grpc.aio.ServicerContext) -> bool:
    return any(k == PRIORITY_KEY and v == "background" for k, v in context.invocation_metadata() or ())


def reply_pb(reply: Reply) -> chat_pb2.ChatResponse:
    return chat_pb2.ChatResponse(
        response=reply.response, model=reply.model, cached=reply.cached, backend=reply.backend,
        duration_ms=reply.duration_ms, finish_reason=reply.finish_reason,
        tool_calls=[chat_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments, index=i)
                    for i, c in enumerate(reply.tool_calls)],
        usage=chat_pb2.Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                             tokens_per_second=reply.tokens_per_second),
    )


def _opt(request: chat_pb2.ChatRequest, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def _message(m: chat_pb2.Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id or f"call_{i}", "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                             for i, c in enumerate(m.tool_calls)]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.name:
        out["name"] = m.name
    return out


def _format(fmt: chat_pb2.ResponseFormat) -> ResponseFormat:
    if fmt.type not in ("text", "json_object", "json_schema"):
        raise InvalidRequestError(f"response_format type must be text, json_object or json_schema, not {fmt.type!r}")
    return ResponseFormat(fmt.type, fmt.schema_json, fmt.name, fmt.strict)  # type: ignore[arg-type]


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, service: ChatService, limits: Limits, *, default_model: str, default_embed_model: str,
                 max_batch_items: int, batch_concurrency: int, max_embed_inputs: int,
                 agents: AgentDirectory | None = None) -> None:
        self.agents = agents
        self.service = service
        self.limits = limits
        self.default_model = default_model
        self.default_embed_model = default_embed_model
        self.max_batch_items = max_batch_items
        self.batch_concurrency = batch_concurrency
        self.max_embed_inputs = max_embed_inputs

    async def _call(self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> ChatCall:
        """The request as a validated ``ChatCall``; an ``agent_id`` supplies the system prompt and the defaults
        (model, temperature, max_tokens) the request leaves unset."""
        model, system = request.model, request.system
        temperature = request.temperature if request.HasField("temperature") else None
        max_tokens = request.max_tokens if request.HasField("max_tokens") else None
        if request.agent_id:
            if self.agents is None:
                raise InvalidRequestError("agent_id needs the agents service, which is not configured")
            caller = current_caller()  # verified; its proof is forwarded as it came
            agent = await self.agents.profile(request.agent_id, caller.to_metadata() if caller else ())
            model, system = model or agent.model, system or agent.system_prompt
            temperature = agent.temperature if temperature is None else temperature
            max_tokens = agent.max_tokens if max_tokens is None else max_tokens
        call = build_call(
            self.limits, model=model or self.default_model,
            messages=[_message(m) for m in request.messages], system=system,
            temperature=temperature, max_tokens=max_tokens,
            seed=request.seed if request.HasField("seed") else None, use_cache=request.use_cache,
            top_p=_opt(request, "top_p"), presence_penalty=_opt(request, "presence_penalty"),
            frequency_penalty=_opt(request, "frequency_penalty"), stop=list(request.stop),
            tools=[Tool(t.name, t.description, t.parameters_json, t.strict) for t in request.tools],
            tool_choice=request.tool_choice, tool_choice_function=request.tool_choice_function,
            parallel_tool_calls=_opt(request, "parallel_tool_calls"),
            response_format=_format(request.response_format) if request.HasField("response_format") else None,
        )
        return dataclasses.replace(call, background=True) if is_background(context) else call

    @_unary
    async def Chat(self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> chat_pb2.ChatResponse:
        return reply_pb(await self.service.chat(await self._call(request, context)))

    async def ChatStream(
        self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.ChatChunk]:
        # A client that goes away cancels this coroutine; the stream's ``aclosing`` closes the backend call.
        try:
            async for item in self.service.stream(await self._call(request, context)):
                if isinstance(item, str):
                    yield chat_pb2.ChatChunk(token=item)
                elif isinstance(item, ToolCallDelta):
                    yield chat_pb2.ChatChunk(tool_call=chat_pb2.ToolCall(
                        index=item.index, id=item.id, name=item.name, arguments=item.arguments))
                else:
                    yield chat_pb2.ChatChunk(done=reply_pb(item))
        except ChatError as exc:
            await _abort(context, exc)

    @_unary
    async def Generate(
        self, request: chat_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ChatResponse:
        call = build_call(
            self.limits, model=request.model or self.default_model, messages=[("user", request.prompt)],
            system=request.system,
            temperature=request.temperature if request.HasField("temperature") else None,
            max_tokens=request.max_tokens if request.HasField("max_tokens") else None, use_cache=request.use_cache,
        )
        if is_background(context):
            call = dataclasses.replace(call, background=True)
        return reply_pb(await self.service.chat(call))

    @_unary
    async def Batch(self, request: chat_pb2.BatchRequest, context: grpc.aio.ServicerContext) -> chat_pb2.BatchResponse:
        if not request.items:
            raise InvalidRequestError("the batch is empty")
        if len(request.items) > self.max_batch_items:
            raise InvalidRequestError(f"the batch has {len(request.items)} items; the limit is {self.max_batch_items}")
        calls: list[ChatCall | ChatError] = []
        for item in request.items:
            try:
                calls.append(await self._call(item, context))
            except ChatError as exc:
                calls.append(exc)
        concurrency = min(request.concurrency or self.batch_concurrency, self.batch_concurrency)
        results = await self.service.batch(calls, concurrency)
        return chat_pb2.BatchResponse(results=[
            chat_pb2.BatchItemResult(index=i, response=reply_pb(r)) if isinstance(r, Reply)
            else chat_pb2.BatchItemResult(index=i, error=f"{status_of(r).name}: {r}")
            for i, r in enumerate(results)
        ])

    @_unary
    async def Analyze(
        self, request: chat_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.AnalyzeResponse:
        options = json_format.MessageToDict(request.options) if request.HasField("options") else {}
        result = await analysis.analyze(
            self.service, text=request.text, analysis_type=request.analysis_type or "full_analysis",
            model=request.model or self.default_model, options=options,
        )
        struct = struct_pb2.Struct()
        struct.update(result)
        return chat_pb2.AnalyzeResponse(success=True, analysis_type=request.analysis_type, result=struct)

    @_unary
    async def Embed(self, request: chat_pb2.EmbedRequest, context: grpc.aio.ServicerContext) -> chat_pb2.EmbedResponse:
        inputs = list(request.inputs)
        if not inputs or any(not text.strip() for text in inputs):
            raise InvalidRequestError("every input to embed must be a non-empty string")
        if len(inputs) > self.max_embed_inputs:
            raise InvalidRequestError(f"{len(inputs)} inputs; the limit is {self.max_embed_inputs}")
        if (size := max(len(t) for t in inputs)) > self.limits.max_prompt_chars:
            raise InvalidRequestError(f"an input is {size} characters; the limit is {self.limits.max_prompt_chars}")
        model, backend, result = await self.service.embed(request.model or self.default_embed_model, inputs)
        return chat_pb2.EmbedResponse(
            model=model, backend=backend, prompt_tokens=result.prompt_tokens,
            dimensions=len(result.vectors[0]) if result.vectors else 0,
            embeddings=[chat_pb2.Embedding(values=v) for v in result.vectors],
        )

    @_unary
    async def ListModels(
        self, request: chat_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListModelsResponse:
        router = self.service.router
        return chat_pb2.ListModelsResponse(models=[
            chat_pb2.ModelInfo(name=model, backend=b.name, aliases=router.aliases_of(model), loaded=model in b.loaded)
            for b in router.backends for model in sorted(b.models)
        ])

    async def GetCapacity(
        self, request: chat_pb2.CapacityRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.CapacityResponse:
        return chat_pb2.CapacityResponse(models=[chat_pb2.ModelCapacity(**row) for row in self.service.capacity()])

    async def GetCacheStats(
        self, request: chat_pb2.CacheStatsRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.CacheStats:
        stats = await self.service.cache.stats()
        redis_server = struct_pb2.Struct()
        redis_server.update(stats["redis_server"])
        return chat_pb2.CacheStats(
            gets=stats["gets"], sets=stats["sets"], hits=stats["hits"], misses=stats["misses"],
            evictions=stats["evictions"], hit_rate=stats["hit_rate"], redis_server=redis_server,
            models=[chat_pb2.ModelCacheStats(model=m, hits=v["hits"], misses=v["misses"])
                    for m, v in sorted(stats["models"].items())],
        )
