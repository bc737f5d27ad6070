"""Ollama-compatible endpoints (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``): Ollama
clients use the platform by pointing their host at the gateway, with a platform API key as a bearer token.
Streaming answers newline-delimited JSON, as Ollama does. Translation to ``sutazai.chat.v1`` only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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
    ToolCallBody,
    ToolDef,
    ollama_format_pb,
    ollama_tool_calls,
    tool_calls_pb,
    tools_pb,
)
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api", tags=["ollama-compatible"])
NDJSON = "application/x-ndjson"
OLLAMA_API_VERSION = "0.12.0"


class Options(BaseModel):
    # Ollama's runner options (num_ctx, num_thread, mirostat, ...) tune a server the platform does not run:
    # accepted and ignored. The sampling ones below travel to the backend.
    model_config = ConfigDict(extra="ignore")

    temperature: float | None = Field(None, ge=0, le=2)
    num_predict: int | None = Field(None, ge=-2, le=32_768)  # -1: unlimited (Ollama's own value)
    seed: int | None = None
    top_p: float | None = Field(None, gt=0, le=1)
    stop: list[str] | None = Field(None, max_length=4)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    def apply(self, request: chat_pb2.ChatRequest) -> None:
        for name in ("top_p", "presence_penalty", "frequency_penalty"):
            if (value := getattr(self, name)) is not None:
                setattr(request, name, value)
        if self.stop:
            request.stop.extend(self.stop)

    @property
    def max_tokens(self) -> int | None:
        return self.num_predict if self.num_predict and self.num_predict > 0 else None


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # images, thinking

    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field("", max_length=200_000)
    tool_calls: list[ToolCallBody] | None = Field(None, max_length=128)
    tool_name: str | None = Field(None, max_length=64)


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")  # keep_alive, think, raw ... are accepted and ignored

    model: str = Field(min_length=1, max_length=200)
    stream: bool = True  # Ollama streams unless told not to
    options: Options = Field(default_factory=Options)
    format: Literal["json", ""] | dict[str, Any] | None = None


class ChatBody(_Base):
    messages: list[OllamaMessage] = Field(min_length=1, max_length=500)
    tools: list[ToolDef] | None = Field(None, max_length=128)

    def grpc_messages(self) -> list[chat_pb2.Message]:
        """Ollama answers a tool call by the tool's name; the chat contract by the call's id."""
        out: list[chat_pb2.Message] = []
        pending: list[chat_pb2.ToolCall] = []
        for m in self.messages:
            message = chat_pb2.Message(role=m.role, content=m.content, tool_calls=tool_calls_pb(m.tool_calls))
            if m.tool_calls:
                for call in message.tool_calls:
                    call.id = f"call_{len(out)}_{call.index}"
                pending = list(message.tool_calls)
            if m.role == "tool":
                match = next((c for c in pending if not m.tool_name or c.name == m.tool_name), None)
                if match is not None:
                    pending.remove(match)
                message.tool_call_id = match.id if match is not None else f"call_{len(out)}"
                message.name = m.tool_name or (match.name if match is not None else "")
            out.append(message)
        return out


class GenerateBody(_Base):
    prompt: str = Field(min_length=1, max_length=200_000)
    system: str = Field("", max_length=200_000)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _final(reply: chat_pb2.ChatResponse) -> dict[str, Any]:
    ns = int(reply.duration_ms * 1_000_000)
    return {"done": True, "done_reason": reply.finish_reason or "stop", "total_duration": ns,
            "prompt_eval_count": reply.usage.prompt_tokens, "eval_count": reply.usage.completion_tokens}


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


async def _answer(request: chat_pb2.ChatRequest, body: _Base, metadata: Any, state: StateDep, kind: str) -> Any:
    """One JSON object, or an NDJSON stream; ``kind`` is ``chat`` (``message``) or ``generate`` (``response``)."""

    def piece(text: str, calls: Any = ()) -> dict[str, Any]:
        if kind != "chat":
            return {"response": text}
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = ollama_tool_calls(calls)
        return {"message": message}

    if not body.stream:
        try:
            reply = await stub(state).Chat(request, metadata=metadata, timeout=chat_client.CHAT_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise problem_of(exc) from exc
        return {"model": body.model, "created_at": _now(), **piece(reply.response, reply.tool_calls),
                **_final(reply)}

    call, first = await chat_client.open_stream(state, request, metadata)

    async def lines():  # type: ignore[no-untyped-def]
        try:
            async for part in chat_client.chunks(call, first):
                kind_of = part.WhichOneof("kind")
                if kind_of == "token":
                    yield _line({"model": body.model, "created_at": _now(), **piece(part.token), "done": False})
                elif kind_of == "done":
                    # Ollama sends each tool call whole, in a chunk of its own before the last one.
                    if part.done.tool_calls:
                        yield _line({"model": body.model, "created_at": _now(),
                                     **piece("", part.done.tool_calls), "done": False})
                    yield _line({"model": body.model, "created_at": _now(), **piece(""), **_final(part.done)})
        except grpc.aio.AioRpcError as exc:
            yield _line({"error": problem_of(exc).detail})

    return StreamingResponse(lines(), media_type=NDJSON)


def _request(body: _Base, messages: Any, system: str = "") -> chat_pb2.ChatRequest:
    request = chat_request(messages=messages, model=body.model, system=system,
                           temperature=body.options.temperature, max_tokens=body.options.max_tokens,
                           seed=body.options.seed)
    body.options.apply(request)
    if (fmt := ollama_format_pb(body.format)) is not None:
        request.response_format.CopyFrom(fmt)
    return request


@router.post("/chat", response_model=None, responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def chat(body: ChatBody, user: CurrentUser, state: StateDep) -> Any:
    request = _request(body, body.grpc_messages())
    request.tools.extend(tools_pb(body.tools))
    return await _answer(request, body, call_metadata(user), state, "chat")


@router.post("/generate", response_model=None, responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def generate(body: GenerateBody, user: CurrentUser, state: StateDep) -> Any:
    request = _request(body, [("user", body.prompt)], body.system)
    return await _answer(request, body, call_metadata(user), state, "generate")


class EmbedBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(min_length=1)


@router.post("/embed", responses=problem_responses(400, 401, 404, 413, 422, 429, 502, 503, 504))
async def embed(body: EmbedBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    reply = await chat_client.embed(state, user, inputs, body.model)
    return {"model": body.model, "embeddings": [list(e.values) for e in reply.embeddings],
            "prompt_eval_count": reply.prompt_tokens}


class LegacyEmbedBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1, max_length=200_000)


@router.post("/embeddings")
async def embeddings(body: LegacyEmbedBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """Ollama's older embedding route: one prompt, one vector."""
    reply = await chat_client.embed(state, user, [body.prompt], body.model)
    return {"embedding": list(reply.embeddings[0].values) if reply.embeddings else []}


@router.get("/version")
async def version(user: CurrentUser) -> dict[str, str]:
    """The Ollama API version the routes follow (clients such as Open WebUI ask first)."""
    return {"version": OLLAMA_API_VERSION}


class ShowBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("", max_length=200)
    name: str = Field("", max_length=200)  # the older spelling


@router.post("/show", responses={404: {"description": "no backend serves the model",
                                       "content": {"application/problem+json": {}}}})
async def show(body: ShowBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    wanted = body.model or body.name
    reply = await chat_client.list_models(state, user)
    found = next((m for m in reply.models if wanted in (m.name, *m.aliases)), None)
    if found is None:
        raise HTTPException(404, f"model {wanted!r} not found")
    return {"modelfile": "", "parameters": "", "template": "", "modified_at": _now(),
            "details": {"parent_model": "", "format": "gguf", "family": "", "families": [],
                        "parameter_size": "", "quantization_level": ""},
            "model_info": {"general.basename": found.name}, "capabilities": ["completion", "tools"],
            "backend": found.backend, "aliases": list(found.aliases)}


@router.get("/ps")
async def ps(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    """The models a backend reports loaded (Ollama backends tell; OpenAI-compatible ones cannot)."""
    reply = await chat_client.list_models(state, user)
    return {"models": [{"name": m.name, "model": m.name, "size": 0, "digest": "", "expires_at": None,
                        "size_vram": 0, "details": {"format": "", "family": ""}}
                       for m in reply.models if m.loaded]}


@router.get("/tags", responses=problem_responses(401, 503, 504))
async def tags(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    reply = await chat_client.list_models(state, user)
    names = sorted({n for m in reply.models for n in (m.name, *m.aliases)})
    return {"models": [{"name": n, "model": n, "modified_at": _now(), "size": 0, "digest": "",
                        "details": {"format": "", "family": "", "parameter_size": "", "quantization_level": ""}}
                       for n in names]}
