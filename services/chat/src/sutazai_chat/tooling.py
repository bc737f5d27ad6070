"""Tools (functions the model may call), tool calls and response formats, as the domain sees them, and how
each backend kind spells them. No I/O.

Messages are kept in OpenAI's chat shape (``role``, ``content``, ``tool_calls``, ``tool_call_id``), which
the OpenAI-compatible servers take as they are; the Ollama adapter converts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

ToolChoice = Literal["auto", "none", "required", "function"]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: str = ""  # the JSON schema as JSON text (kept as text: hashable, and ints stay ints)
    strict: bool = False

    def schema(self) -> dict[str, Any]:
        return json.loads(self.parameters) if self.parameters else {"type": "object", "properties": {}}

    def openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.schema()}
        if self.description:
            function["description"] = self.description
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: ``id`` and ``name`` on its first piece, then argument text."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: str = ""  # json_schema: the schema as JSON text
    name: str = ""
    strict: bool = False

    def schema_dict(self) -> dict[str, Any] | None:
        return json.loads(self.schema) if self.schema else None


def openai_tool_choice(choice: ToolChoice | None, function: str) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "function":
        return {"type": "function", "function": {"name": function}}
    return choice


def assemble(deltas: dict[int, list[ToolCallDelta]]) -> list[ToolCall]:
    """The whole tool calls from their streamed pieces, in index order."""
    calls = []
    for index in sorted(deltas):
        pieces = deltas[index]
        calls.append(ToolCall(id=next((p.id for p in pieces if p.id), f"call_{index}"),
                              name=next((p.name for p in pieces if p.name), ""),
                              arguments="".join(p.arguments for p in pieces)))
    return calls


def ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages in Ollama's shape: tool-call arguments are objects, a tool result names its tool."""
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or ()}
    converted = []
    for m in messages:
        out: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            out["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                               "arguments": _loads_object(c["function"]["arguments"])}}
                                 for c in m["tool_calls"]]
        if m["role"] == "tool":
            name = m.get("name") or names.get(m.get("tool_call_id", ""), "")
            if name:
                out["tool_name"] = name
        converted.append(out)
    return converted


def _loads_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
