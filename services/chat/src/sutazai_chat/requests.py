"""Requests as the domain sees them, and their validation: nothing invalid reaches a model server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sutazai_chat.backends import Params
from sutazai_chat.errors import InvalidRequestError
from sutazai_chat.tooling import ResponseFormat, Tool, ToolCall, ToolChoice

ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_TOKENS_LIMIT = 32_768
MAX_TOOLS = 128
MAX_STOP = 4
TOOL_CHOICES = frozenset({"auto", "none", "required", "function"})
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Limits:
    max_prompt_chars: int
    max_messages: int
    default_max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str  # as the caller named it (an alias resolves later)
    messages: tuple[dict[str, Any], ...]  # OpenAI's chat shape
    params: Params = field(default_factory=Params)
    use_cache: bool = False
    background: bool = False  # task work (metadata sutazai-priority: background): served after interactive calls


@dataclass(slots=True)
class Reply:
    response: str
    model: str
    backend: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: float
    finish_reason: str = "stop"
    cached: bool = False
    ttft_ms: float = 0.0
    generated_rate: float | None = None  # a cached reply keeps the rate at which it was generated
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        if self.generated_rate is not None:
            return self.generated_rate
        generating_s = (self.duration_ms - self.ttft_ms) / 1000
        if self.completion_tokens <= 1 or generating_s <= 0:
            return 0.0
        return round((self.completion_tokens - 1) / generating_s, 2)


def build_call(
    limits: Limits, *, model: str, messages: Iterable[tuple[str, str] | dict[str, Any]], system: str = "",
    temperature: float | None = None, max_tokens: int | None = None, seed: int | None = None,
    use_cache: bool = False, top_p: float | None = None, stop: Sequence[str] = (),
    presence_penalty: float | None = None, frequency_penalty: float | None = None,
    response_format: ResponseFormat | None = None, tools: Sequence[Tool] = (),
    tool_choice: str = "", tool_choice_function: str = "", parallel_tool_calls: bool | None = None,
) -> ChatCall:
    """Validate a chat request and turn it into a ``ChatCall``; raise InvalidRequestError naming the problem."""
    listed = [_message(m) for m in messages]
    if system:
        listed.insert(0, {"role": "system", "content": system})
    call_ids: set[str] = set()
    for i, m in enumerate(listed):
        if m["role"] not in ROLES:
            raise InvalidRequestError(f"message {i} has role {m['role']!r}; use one of {sorted(ROLES)}")
        call_ids.update(c["id"] for c in m.get("tool_calls") or ())
        if m["role"] == "tool" and not m.get("tool_call_id"):
            raise InvalidRequestError(f"message {i} has role 'tool' but no tool_call_id")
        if m["role"] == "tool" and m["tool_call_id"] not in call_ids:
            raise InvalidRequestError(
                f"message {i} answers tool call {m['tool_call_id']!r}, which no earlier assistant message made")
    if not any(m["role"] == "user" for m in listed):
        raise InvalidRequestError("the request has no user message: send a non-empty 'message' or 'messages'")
    if len(listed) > limits.max_messages:
        raise InvalidRequestError(f"too many messages: {len(listed)} (the limit is {limits.max_messages})")
    last_user = [m for m in listed if m["role"] == "user"][-1]
    if not last_user["content"].strip():
        raise InvalidRequestError("the message is empty")
    size = sum(len(m.get("content") or "") + sum(len(c["function"]["arguments"]) for c in m.get("tool_calls") or ())
               for m in listed)
    if size > limits.max_prompt_chars:
        raise InvalidRequestError(
            f"the prompt is {size} characters; the limit is {limits.max_prompt_chars}"
        )
    if temperature is not None and not 0 <= temperature <= 2:
        raise InvalidRequestError(f"temperature must be between 0 and 2, not {temperature}")
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidRequestError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, not {max_tokens}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InvalidRequestError(f"top_p must be in (0, 1], not {top_p}")
    for name, value in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
        if value is not None and not -2 <= value <= 2:
            raise InvalidRequestError(f"{name} must be between -2 and 2, not {value}")
    if len(stop) > MAX_STOP or any(not s for s in stop):
        raise InvalidRequestError(f"stop takes at most {MAX_STOP} non-empty strings")
    choice = _tool_choice(tools, tool_choice, tool_choice_function)
    if response_format is not None:
        _check_format(response_format)
    if max_tokens is None:
        max_tokens = limits.default_max_tokens
    return ChatCall(model=model, messages=tuple(listed), use_cache=use_cache, params=Params(
        temperature=temperature, max_tokens=max_tokens, seed=seed, top_p=top_p, stop=tuple(stop),
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
        response_format=response_format if response_format and response_format.type != "text" else None,
        tools=tuple(tools), tool_choice=choice, tool_choice_function=tool_choice_function if choice == "function"
        else "", parallel_tool_calls=parallel_tool_calls if tools else None,
    ))


def _message(m: tuple[str, str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(m, tuple):
        role, content = m
        return {"role": role or "user", "content": content}
    out: dict[str, Any] = {"role": m.get("role") or "user", "content": m.get("content") or ""}
    if m.get("tool_calls"):
        out["tool_calls"] = list(m["tool_calls"])
    if m.get("tool_call_id"):
        out["tool_call_id"] = m["tool_call_id"]
    if m.get("name"):
        out["name"] = m["name"]
    return out


def _schema(text: str, where: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"{where} must be a JSON schema object")
    return schema


def _tool_choice(tools: Sequence[Tool], choice: str, function: str) -> ToolChoice | None:
    if len(tools) > MAX_TOOLS:
        raise InvalidRequestError(f"{len(tools)} tools; the limit is {MAX_TOOLS}")
    names = [t.name for t in tools]
    for tool in tools:
        if not _TOOL_NAME.match(tool.name):
            raise InvalidRequestError(f"tool name {tool.name!r}: use 1-64 letters, digits, '_', '-' or '.'")
        if tool.parameters:
            schema = _schema(tool.parameters, f"the parameters of tool {tool.name!r}")
            if schema.get("type", "object") != "object":
                raise InvalidRequestError(f"the parameters of tool {tool.name!r} must be an object schema")
    if len(set(names)) != len(names):
        raise InvalidRequestError("two tools have the same name")
    if not choice:
        return "auto" if tools else None
    if choice not in TOOL_CHOICES:
        raise InvalidRequestError(f"tool_choice must be one of {sorted(TOOL_CHOICES)}, not {choice!r}")
    if choice in ("required", "function") and not tools:
        raise InvalidRequestError(f"tool_choice {choice!r} needs tools")
    if choice == "function" and function not in names:
        raise InvalidRequestError(f"tool_choice names function {function!r}, which is not among the tools {names}")
    return choice  # type: ignore[return-value]


def _check_format(fmt: ResponseFormat) -> None:
    if fmt.type not in ("text", "json_object", "json_schema"):
        raise InvalidRequestError(f"response_format type must be text, json_object or json_schema, not {fmt.type!r}")
    if fmt.type == "json_schema":
        if not fmt.schema:
            raise InvalidRequestError("response_format json_schema needs a schema")
        _schema(fmt.schema, "the response_format schema")
