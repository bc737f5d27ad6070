"""The local llama.cpp server (``llama_cpp.server``) with function calling, run by the model server's own
interpreter: ``python model_server.py <llama_cpp.server arguments>``. Imports nothing of the platform.

It registers the chat format ``sutazai-chatml-tools``: llama-cpp-python's ``chatml-function-calling``
(SmolLM2 speaks ChatML; tool arguments and JSON replies are grammar-constrained), with three gaps filled:
- its template drops ``tool`` messages, so a tool's result would never reach the model: they become user
  turns naming the call they answer;
- it has no ``tool_choice: "required"`` (it asserts): with one tool that is the tool, else ``auto``;
- without a system message the model gets SmolLM2's own default one, as its GGUF template does."""

from __future__ import annotations

import json
import sys
from typing import Any

import llama_cpp.llama_chat_format as formats

FORMAT = "sutazai-chatml-tools"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {c.get("id"): c.get("function", {}).get("name", "") for m in messages for c in m.get("tool_calls") or ()}
    out: list[dict[str, Any]] = []
    if not any(m.get("role") == "system" for m in messages):
        out.append({"role": "system", "content": DEFAULT_SYSTEM})
    for m in messages:
        if m.get("role") == "tool":
            name = names.get(m.get("tool_call_id")) or m.get("name") or "the tool"
            content = m.get("content")
            if not isinstance(content, str):
                content = json.dumps(content)
            out.append({"role": "user", "content": f"Result of {name}: {content}"})
        elif m.get("role") == "assistant" and m.get("tool_calls"):
            out.append({"role": "assistant", "content": m.get("content") or None, "tool_calls": m["tool_calls"]})
        else:
            out.append(m)
    return out


@formats.register_chat_completion_handler(FORMAT)
def sutazai_chatml_tools(*, messages: list[dict[str, Any]], tools: Any = None, tool_choice: Any = None,
                         **kwargs: Any) -> Any:
    if tool_choice == "required":
        tool_choice = {"type": "function", "function": {"name": tools[0]["function"]["name"]}} \
            if tools and len(tools) == 1 else "auto"
    if tools and tool_choice is None:
        tool_choice = "auto"
    return formats.chatml_function_calling(messages=_messages(messages), tools=tools, tool_choice=tool_choice,
                                           **kwargs)


if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    sys.argv = [sys.argv[0], "--chat_format", FORMAT, *sys.argv[1:]]
    main()
