"""Tools, tool choices, tool calls and response formats of the three chat surfaces (ours, OpenAI's, Ollama's)
as request bodies, and their translation to and from ``sutazai.chat.v1``. No domain logic: the chat service
validates (a bad schema, an unknown forced function) and answers with its own message."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sutazai.chat.v1 import chat_pb2

NAME = r"^[A-Za-z0-9_.\-]{1,64}$"


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=10_000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    """OpenAI's (and Ollama's) ``{"type": "function", "function": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str = Field(pattern=NAME)


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoiceBody = Literal["auto", "none", "required"] | NamedToolChoice


class CallFunction(BaseModel):
    name: str = Field(max_length=64)
    arguments: str | dict[str, Any] = "{}"  # OpenAI: JSON text; Ollama: an object


class ToolCallBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Ollama adds "index" and the like

    id: str = Field("", max_length=200)
    type: Literal["function"] = "function"
    function: CallFunction


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field("response", max_length=64)
    description: str = Field("", max_length=10_000)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def tools_pb(tools: list[ToolDef] | None) -> list[chat_pb2.Tool]:
    return [chat_pb2.Tool(name=t.function.name, description=t.function.description,
                          parameters_json=_json(t.function.parameters) if t.function.parameters is not None else "",
                          strict=bool(t.function.strict)) for t in tools or ()]


def set_tool_choice(request: chat_pb2.ChatRequest, choice: ToolChoiceBody | None) -> None:
    if isinstance(choice, NamedToolChoice):
        request.tool_choice, request.tool_choice_function = "function", choice.function.name
    elif choice is not None:
        request.tool_choice = choice


def format_pb(fmt: ResponseFormatBody | None) -> chat_pb2.ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise ValueError("response_format of type json_schema needs 'json_schema'")
        return chat_pb2.ResponseFormat(type="json_schema", schema_json=_json(fmt.json_schema.schema_),
                                       name=fmt.json_schema.name, strict=bool(fmt.json_schema.strict))
    return chat_pb2.ResponseFormat(type="json_object")


def ollama_format_pb(fmt: str | dict[str, Any] | None) -> chat_pb2.ResponseFormat | None:
    """Ollama's ``format``: ``"json"`` or a JSON schema."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return chat_pb2.ResponseFormat(type="json_object")
    if isinstance(fmt, dict):
        return chat_pb2.ResponseFormat(type="json_schema", schema_json=_json(fmt), name="response")
    raise ValueError(f"format must be \"json\" or a JSON schema, not {fmt!r}")


def tool_calls_pb(calls: list[ToolCallBody] | None) -> list[chat_pb2.ToolCall]:
    return [chat_pb2.ToolCall(id=c.id or f"call_{i}", name=c.function.name, index=i,
                              arguments=c.function.arguments if isinstance(c.function.arguments, str)
                              else _json(c.function.arguments))
            for i, c in enumerate(calls or ())]


def openai_tool_calls(calls: Any) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def ollama_tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for c in calls:
        try:
            arguments = json.loads(c.arguments) if c.arguments else {}
        except ValueError:
            arguments = {}
        out.append({"function": {"name": c.name, "arguments": arguments}})
    return out
