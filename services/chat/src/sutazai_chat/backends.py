"""Adapters to model servers, through their official clients: ``openai.AsyncOpenAI`` for any
OpenAI-compatible server (llama.cpp, vLLM, LM Studio) and ``ollama.AsyncClient`` for Ollama. One exception:
``OpenAIBackend.embed`` posts OpenAI's ``/v1/embeddings`` with ``aiohttp`` itself. That request is one small
JSON object; the official client spent ~2 ms of CPU per call on it (request options, httpx2, a pydantic
model of the reply), more than the rest of chat's ``Embed`` and most of what the memory search path added
over the embeddings server's own time (``bench/README.md``, memory).

Each adapter turns its API into the same small vocabulary (``Delta``, ``Completion``) and raises only
``BackendCallError`` for anything the backend did wrong (connection refused, timeout, 5xx, bad reply)."""

from __future__ import annotations

import array
import base64
import json
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import httpx
import ollama
import openai

from sutazai_chat.backend_config import BackendSpec
from sutazai_chat.tooling import (
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ollama_messages,
    openai_tool_choice,
)


class BackendCallError(Exception):
    """The backend failed (counts against its breaker)."""


class BackendRejectedError(BackendCallError):
    """The backend refused the request itself (a 4xx other than 408/429): not the backend's fault."""


@dataclass(frozen=True, slots=True)
class Params:
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    json_schema: dict[str, Any] | None = None  # ask for JSON output following this schema (analyze)
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    tool_choice_function: str = ""
    parallel_tool_calls: bool | None = None

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema the output must follow, if any."""
        if self.json_schema is not None:
            return self.json_schema
        return self.response_format.schema_dict() if self.response_format else None

    def wants_json(self) -> bool:
        return self.json_schema is not None or (
            self.response_format is not None and self.response_format.type != "text")


@dataclass(slots=True)
class Delta:
    """One piece of a streamed reply: a token, a piece of a tool call, or (last) the usage and finish reason."""

    token: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    tool_call: ToolCallDelta | None = None


@dataclass(slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


Messages = Sequence[dict[str, Any]]  # OpenAI's chat shape (see ``tooling``)


class ModelClient(Protocol):
    async def list_models(self) -> list[str]: ...
    async def loaded_models(self) -> set[str] | None: ...
    async def complete(self, model: str, messages: Messages, params: Params) -> Completion: ...
    def stream(self, model: str, messages: Messages, params: Params) -> AsyncIterator[Delta]: ...
    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings: ...
    async def close(self) -> None: ...


class OpenAIBackend:
    def __init__(self, spec: BackendSpec, *, connect_timeout_s: float, request_timeout_s: float) -> None:
        key = spec.api_key.get_secret_value() if spec.api_key else "unused"
        self._client = openai.AsyncOpenAI(
            base_url=spec.url + "/v1", api_key=key, max_retries=0,  # failover is ours, not the client's
            timeout=openai.Timeout(request_timeout_s, connect=connect_timeout_s),
        )
        self._embeddings_url = spec.url + "/v1/embeddings"
        self._headers = {"Authorization": f"Bearer {key}"}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s, connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the running loop

    async def list_models(self) -> list[str]:
        try:
            page = await self._client.models.list(timeout=5)
            return [m.id for m in page.data]
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc

    async def loaded_models(self) -> set[str] | None:
        return None  # the OpenAI API cannot tell

    def _kwargs(self, params: Params) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.max_tokens is not None:
            kwargs["max_tokens"] = params.max_tokens
        if params.seed is not None:
            kwargs["seed"] = params.seed
        for name in ("top_p", "presence_penalty", "frequency_penalty", "parallel_tool_calls"):
            if (value := getattr(params, name)) is not None:
                kwargs[name] = value
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.wants_json():
            # llama-cpp-python's server turns ``schema`` into a grammar (it has no "json_schema" type);
            # llama.cpp's own server and vLLM read it too.
            schema = params.schema()
            kwargs["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
        if params.tools:
            kwargs["tools"] = [t.openai() for t in params.tools]
            # llama-cpp-python's function-calling format has no "required": with one tool it is that tool.
            choice, function = params.tool_choice, params.tool_choice_function
            if choice == "required" and len(params.tools) == 1:
                choice, function = "function", params.tools[0].name
            kwargs["tool_choice"] = openai_tool_choice(choice or "auto", function)
        return kwargs

    async def complete(self, model: str, messages: Messages, params: Params) -> Completion:
        try:
            reply = await self._client.chat.completions.create(
                model=model, messages=list(messages), **self._kwargs(params)  # type: ignore[arg-type]
            )
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc
        if not reply.choices:
            raise BackendCallError("the backend answered without choices")
        choice = reply.choices[0]
        usage = reply.usage
        calls = [ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
                 for c in choice.message.tool_calls or () if getattr(c, "function", None)]
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason="tool_calls" if calls else choice.finish_reason or "stop",
            tool_calls=calls,
        )

    async def stream(self, model: str, messages: Messages, params: Params) -> AsyncIterator[Delta]:
        try:
            stream = await self._client.chat.completions.create(
                model=model, messages=list(messages), stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True}, **self._kwargs(params),
            )
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc
        named: set[int] = set()  # llama-cpp-python repeats id and name on every piece; OpenAI sends them once
        try:
            async for chunk in stream:
                final = Delta()
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.delta and choice.delta.content:
                        yield Delta(token=choice.delta.content)
                    for call in (choice.delta.tool_calls or ()) if choice.delta else ():
                        function = call.function
                        first = call.index not in named
                        named.add(call.index)
                        yield Delta(tool_call=ToolCallDelta(
                            index=call.index, id=(call.id or "") if first else "",
                            name=((function.name or "") if function else "") if first else "",
                            arguments=(function.arguments or "") if function else ""))
                    final.finish_reason = choice.finish_reason
                if chunk.usage:
                    final.prompt_tokens = chunk.usage.prompt_tokens
                    final.completion_tokens = chunk.usage.completion_tokens
                if final.finish_reason or final.prompt_tokens is not None:
                    yield final
        except Exception as exc:  # any failure of the backend's reply, including a dropped connection
            raise _wrap(exc) from exc
        finally:
            await stream.close()  # closes the connection: the model server stops generating

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        """OpenAI's ``POST /v1/embeddings`` with base64 vectors, as the official client asks for them (a server
        that answers float lists anyway is read too). Failures are classified as the client's would be."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        try:
            async with self._session.post(self._embeddings_url, json={
                    "model": model, "input": list(inputs), "encoding_format": "base64"}) as response:
                if response.status >= 300:
                    raise _HttpStatusError(response.status, (await response.text())[:200])
                reply = await response.json(content_type=None)
            data = sorted(reply["data"], key=lambda d: d["index"])
            vectors = [_vector(d["embedding"]) for d in data]
            usage = reply.get("usage") or {}
            tokens = int(usage.get("prompt_tokens") or 0)
        except Exception as exc:  # any failure of the backend's reply: connection, timeout, status, shape
            raise _wrap(exc) from exc
        if len(vectors) != len(inputs):
            raise BackendCallError(f"the backend answered {len(vectors)} embeddings for {len(inputs)} inputs")
        return Embeddings(vectors, tokens)

    async def close(self) -> None:
        await self._client.close()
        if self._session is not None:
            await self._session.close()


class _HttpStatusError(Exception):
    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"HTTP {status_code}: {body}")
        self.status_code = status_code  # read by _wrap, as on openai's APIStatusError


def _vector(embedding: str | list[float]) -> list[float]:
    if isinstance(embedding, list):
        return [float(v) for v in embedding]
    values = array.array("f", base64.b64decode(embedding))  # little-endian float32, as OpenAI sends them
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


class OllamaBackend:
    def __init__(self, spec: BackendSpec, *, connect_timeout_s: float, request_timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {spec.api_key.get_secret_value()}"} if spec.api_key else None
        self._client = ollama.AsyncClient(
            host=spec.url, headers=headers, timeout=httpx.Timeout(request_timeout_s, connect=connect_timeout_s)
        )

    async def list_models(self) -> list[str]:
        try:
            listed = await self._client.list()
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc
        return [m.model for m in listed.models if m.model]

    async def loaded_models(self) -> set[str] | None:
        try:
            running = await self._client.ps()
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc
        return {m.model for m in running.models if m.model}

    @staticmethod
    def _options(params: Params) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if params.temperature is not None:
            options["temperature"] = params.temperature
        if params.max_tokens is not None:
            options["num_predict"] = params.max_tokens
        if params.seed is not None:
            options["seed"] = params.seed
        for name in ("top_p", "presence_penalty", "frequency_penalty"):
            if (value := getattr(params, name)) is not None:
                options[name] = value
        if params.stop:
            options["stop"] = list(params.stop)
        return options

    @staticmethod
    def _extra(params: Params) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if params.wants_json():
            extra["format"] = params.schema() or "json"
        if params.tools and params.tool_choice != "none":
            extra["tools"] = [t.openai() for t in params.tools]  # Ollama has no tool_choice
        return extra

    @staticmethod
    def _calls(message: Any) -> list[ToolCall]:
        return [ToolCall(id=f"call_{i}", name=c.function.name, arguments=json.dumps(dict(c.function.arguments)))
                for i, c in enumerate(getattr(message, "tool_calls", None) or ())]

    async def complete(self, model: str, messages: Messages, params: Params) -> Completion:
        try:
            reply = await self._client.chat(
                model=model, messages=ollama_messages(list(messages)), options=self._options(params),
                **self._extra(params),
            )
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc
        calls = self._calls(reply.message)
        return Completion(
            text=reply.message.content or "", prompt_tokens=reply.prompt_eval_count or 0,
            completion_tokens=reply.eval_count or 0,
            finish_reason="tool_calls" if calls else reply.done_reason or "stop", tool_calls=calls,
        )

    async def stream(self, model: str, messages: Messages, params: Params) -> AsyncIterator[Delta]:
        try:
            parts = await self._client.chat(
                model=model, messages=ollama_messages(list(messages)), options=self._options(params),
                stream=True, **self._extra(params),
            )
            called = 0
            async for part in parts:
                if part.message and part.message.content:
                    yield Delta(token=part.message.content)
                for call in self._calls(part.message):  # Ollama sends each call whole
                    yield Delta(tool_call=ToolCallDelta(index=called, id=f"call_{called}", name=call.name,
                                                        arguments=call.arguments))
                    called += 1
                if part.done:
                    yield Delta(prompt_tokens=part.prompt_eval_count, completion_tokens=part.eval_count,
                                finish_reason="tool_calls" if called else part.done_reason or "stop")
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        try:
            reply = await self._client.embed(model=model, input=list(inputs))
        except Exception as exc:  # any failure of the backend's reply
            raise _wrap(exc) from exc
        return Embeddings([list(v) for v in reply.embeddings], reply.prompt_eval_count or 0)

    async def close(self) -> None:
        await self._client.close()


def make_client(spec: BackendSpec, *, connect_timeout_s: float, request_timeout_s: float) -> ModelClient:
    cls = OpenAIBackend if spec.kind == "openai" else OllamaBackend
    return cls(spec, connect_timeout_s=connect_timeout_s, request_timeout_s=request_timeout_s)


def _wrap(exc: Exception) -> BackendCallError:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return BackendRejectedError(_describe(exc))
    return BackendCallError(_describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__

