"""Ollama-compatible endpoints (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``): Ollama
clients use the platform by pointing their host at the gateway, with a platform API key as a bearer token.
Streaming answers newline-delimited JSON, as Ollama does. Translation to ``sutazai.chat.v1`` only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import grpc
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sutazai.chat.v1 import chat_pb2

from sutazai_gateway import chat_client
from sutazai_gateway.api.deps import CurrentUser, StateDep, call_metadata
from sutazai_gateway.chat_client import chat_request, problem_of, stub

router = APIRouter(prefix="/api", tags=["ollama-compatible"])
NDJSON = "application/x-ndjson"


class Options(BaseModel):
    model_config = ConfigDict(extra="ignore")

    temperature: float | None = Field(None, ge=0, le=2)
    num_predict: int | None = Field(None, ge=1, le=32_768)
    seed: int | None = None


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore")  # keep_alive, format, think ... are accepted and ignored

    model: str = Field(min_length=1, max_length=200)
    stream: bool = True  # Ollama streams unless told not to
    options: Options = Field(default_factory=Options)


class ChatBody(_Base):
    messages: list[OllamaMessage] = Field(min_length=1, max_length=500)


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

    def piece(text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}} if kind == "chat" else {"response": text}

    if not body.stream:
        try:
            reply = await stub(state).Chat(request, metadata=metadata, timeout=chat_client.CHAT_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise problem_of(exc) from exc
        return {"model": body.model, "created_at": _now(), **piece(reply.response), **_final(reply)}

    call, first = await chat_client.open_stream(state, request, metadata)

    async def lines():  # type: ignore[no-untyped-def]
        try:
            async for part in chat_client.chunks(call, first):
                if part.WhichOneof("kind") == "token":
                    yield _line({"model": body.model, "created_at": _now(), **piece(part.token), "done": False})
                else:
                    yield _line({"model": body.model, "created_at": _now(), **piece(""), **_final(part.done)})
        except grpc.aio.AioRpcError as exc:
            yield _line({"error": problem_of(exc).detail})

    return StreamingResponse(lines(), media_type=NDJSON)


@router.post("/chat", response_model=None)
async def chat(body: ChatBody, user: CurrentUser, state: StateDep) -> Any:
    request = chat_request(messages=[(m.role, m.content) for m in body.messages], model=body.model,
                           temperature=body.options.temperature, max_tokens=body.options.num_predict,
                           seed=body.options.seed)
    return await _answer(request, body, call_metadata(user), state, "chat")


@router.post("/generate", response_model=None)
async def generate(body: GenerateBody, user: CurrentUser, state: StateDep) -> Any:
    request = chat_request(messages=[("user", body.prompt)], model=body.model, system=body.system,
                           temperature=body.options.temperature, max_tokens=body.options.num_predict,
                           seed=body.options.seed)
    return await _answer(request, body, call_metadata(user), state, "generate")


class EmbedBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(min_length=1)


@router.post("/embed")
async def embed(body: EmbedBody, user: CurrentUser, state: StateDep) -> dict[str, Any]:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    reply = await chat_client.embed(state, user, inputs, body.model)
    return {"model": body.model, "embeddings": [list(e.values) for e in reply.embeddings],
            "prompt_eval_count": reply.prompt_tokens}


@router.get("/tags")
async def tags(user: CurrentUser, state: StateDep) -> dict[str, Any]:
    reply = await chat_client.list_models(state, user)
    names = sorted({n for m in reply.models for n in (m.name, *m.aliases)})
    return {"models": [{"name": n, "model": n, "modified_at": _now(), "size": 0, "digest": "",
                        "details": {"format": "", "family": "", "parameter_size": "", "quantization_level": ""}}
                       for n in names]}
