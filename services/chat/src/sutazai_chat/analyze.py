"""Text analysis answered as structured JSON: the model is asked for output following a JSON schema
(llama.cpp and Ollama constrain generation to it), the reply is validated against the schema, and the
call is retried once when it is not valid."""

from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema

from sutazai_chat.backends import Params
from sutazai_chat.errors import InvalidOutputError, InvalidRequestError
from sutazai_chat.requests import ChatCall
from sutazai_chat.service import ChatService

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 50_000
_WORDS = {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": 10}
_PARTS: dict[str, tuple[dict[str, Any], str]] = {
    "sentiment": (
        {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral", "mixed"]},
         "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
        "the overall sentiment and your confidence in it (0 to 1)",
    ),
    "entities": (
        {"entities": {"type": "array", "maxItems": 10, "items": {
            "type": "object", "required": ["text", "type"], "additionalProperties": False,
            "properties": {"text": {"type": "string", "maxLength": 80},
                           "type": {"type": "string", "enum": ["person", "organization", "location", "date",
                                                              "product", "other"]}}}}},
        "the named entities (people, organizations, places, dates, products)",
    ),
    "summary": ({"summary": {"type": "string", "maxLength": 600}}, "a summary in one to three sentences"),
    "keywords": ({"keywords": _WORDS}, "up to ten keywords"),
    "language": (
        {"language": {"type": "string", "maxLength": 40}, "code": {"type": "string", "maxLength": 8}},
        "the language's English name and its ISO 639-1 code",
    ),
}
ANALYSIS_TYPES = (*_PARTS, "full_analysis")


def schema_for(analysis_type: str) -> dict[str, Any]:
    names = list(_PARTS) if analysis_type == "full_analysis" else [analysis_type]
    properties = {k: v for name in names for k, v in _PARTS[name][0].items()}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _prompt(analysis_type: str, text: str) -> str:
    names = list(_PARTS) if analysis_type == "full_analysis" else [analysis_type]
    wanted = "; ".join(_PARTS[n][1] for n in names)
    return f"Analyze the text below. Give {wanted}. Answer with JSON only.\n\nText:\n{text}"


async def analyze(
    service: ChatService, *, text: str, analysis_type: str, model: str, options: dict[str, Any]
) -> dict[str, Any]:
    if analysis_type not in ANALYSIS_TYPES:
        raise InvalidRequestError(f"analysis_type {analysis_type!r} is not one of {list(ANALYSIS_TYPES)}")
    if not text.strip():
        raise InvalidRequestError("the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidRequestError(f"the text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    schema = schema_for(analysis_type)
    max_tokens = int(options.get("max_tokens", 512))
    call = ChatCall(
        model=model,
        messages=({"role": "system", "content": "You are a precise text analyst. You answer in JSON."},
                  {"role": "user", "content": _prompt(analysis_type, text)}),
        params=Params(temperature=0.0, max_tokens=max_tokens, json_schema=schema),
        use_cache=bool(options.get("use_cache", True)),
    )
    problem = ""
    for attempt in (1, 2):
        # The retry asks with a seed so it is a different (and separately cached) request.
        reply = await service.chat(call if attempt == 1 else _with_seed(call, attempt))
        try:
            result = json.loads(reply.response)
            jsonschema.validate(result, schema)
            return dict(result)
        except (ValueError, jsonschema.ValidationError) as exc:
            problem = str(exc).splitlines()[0][:200]
            log.info("analysis output invalid (attempt %d): %s", attempt, problem)
    raise InvalidOutputError(f"the model's output did not match the {analysis_type} schema twice: {problem}")


def _with_seed(call: ChatCall, seed: int) -> ChatCall:
    p = call.params
    return ChatCall(model=call.model, messages=call.messages, use_cache=call.use_cache,
                    params=Params(temperature=0.3, max_tokens=p.max_tokens, seed=seed, json_schema=p.json_schema))
