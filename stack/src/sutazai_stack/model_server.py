"""The local llama.cpp server (``llama_cpp.server``) with function calling, run by the model server's own
interpreter: ``python model_server.py <llama_cpp.server arguments>``. Imports nothing of the platform.

It registers the chat format ``sutazai-chatml-tools``. A request that offers tools goes to llama-cpp-python's
``chatml-function-calling`` (SmolLM2 speaks ChatML; tool arguments are grammar-constrained), with its gaps
filled: its template drops ``tool`` messages, so a tool's result would never reach the model (they become
user turns naming the call they answer); it has no ``tool_choice: "required"`` (it asserts: with one tool
that is the tool, else ``auto``); and it has no default system message (SmolLM2's own is added).
Every other request (no tools, or ``tool_choice: "none"``) goes to the model's own GGUF chat template, as
before, with earlier tool calls and results written out as text; ``response_format`` there becomes a
grammar too.

Grammars from JSON schemas (``response_format`` schemas and tool arguments) keep raw control characters out
of strings, as JSON requires: llama-cpp-python's converter lets a string hold a raw newline (its ``char`` rule
is ``[^"\\]``; llama.cpp's own converter excludes ``\x00-\x1F`` since llama.cpp#5888; llama-cpp-python#1259),
so a small model could leave the JSON mid-string for prose with newlines until ``max_tokens`` cut it short."""

from __future__ import annotations

import json
import sys
from typing import Any

import llama_cpp.llama_chat_format as formats
import llama_cpp.llama_grammar as grammars

FORMAT = "sutazai-chatml-tools"
# A JSON string's character: anything but a quote, a backslash or a control character, or an escape
# (llama.cpp's common/json-schema-to-grammar.cpp). Grammars are built from this table per request.
grammars.PRIMITIVE_RULES["char"] = grammars.BuiltinRule(
    r'[^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])', [])
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _messages(messages: list[dict[str, Any]], *, with_tools: bool) -> list[dict[str, Any]]:
    names = {c.get("id"): c.get("function", {}).get("name", "") for m in messages for c in m.get("tool_calls") or ()}
    out: list[dict[str, Any]] = []
    if with_tools and not any(m.get("role") == "system" for m in messages):
        out.append({"role": "system", "content": DEFAULT_SYSTEM})
    for m in messages:
        if m.get("role") == "tool":
            name = names.get(m.get("tool_call_id")) or m.get("name") or "the tool"
            content = m.get("content")
            if not isinstance(content, str):
                content = json.dumps(content)
            out.append({"role": "user", "content": f"Result of {name}: {content}"})
        elif m.get("role") == "assistant" and m.get("tool_calls"):
            if with_tools:
                out.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": m["tool_calls"]})
            else:
                calls = "; ".join(f"{c['function']['name']}({c['function'].get('arguments', '')})"
                                  for c in m["tool_calls"])
                out.append({"role": "assistant", "content": ((m.get("content") or "") + f" I called {calls}.").strip()})
        else:
            out.append(m)
    return out


@formats.register_chat_completion_handler(FORMAT)
def sutazai_chatml_tools(*, llama: Any, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None,
                         **kwargs: Any) -> Any:
    if not tools or tool_choice == "none":
        own = llama._chat_handlers.get("chat_template.default")  # the GGUF's template, as llama.cpp loads it
        if own is not None:
            return own(llama=llama, messages=_messages(messages, with_tools=False), **kwargs)
        return formats.chatml_function_calling(llama=llama, messages=_messages(messages, with_tools=False),
                                               **kwargs)
    if tool_choice == "required":
        tool_choice = {"type": "function", "function": {"name": tools[0]["function"]["name"]}} \
            if len(tools) == 1 else "auto"
    return formats.chatml_function_calling(llama=llama, messages=_messages(messages, with_tools=True), tools=tools,
                                           tool_choice=tool_choice or "auto", **kwargs)


if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    sys.argv = [sys.argv[0], "--chat_format", FORMAT, *sys.argv[1:]]
    main()
