"""``extract_graph: true``: one model call per stored memory for the entities and relations it states,
asked with a JSON schema (chat's ``response_format: json_schema``, which the local llama.cpp server
enforces with a grammar). The reply is still checked here, strictly: anything that is not the shape asked
for, or a relation naming an entity the reply does not list, is refused with a reason, and the memory is
kept all the same (the graph is a by-product, never a reason to lose a memory)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_ENTITIES = 20
MAX_RELATIONS = 40
MAX_NAME = 200
MAX_TYPE = 64

SYSTEM = (
    "You extract a knowledge graph from a short text. List the people, organizations, places, things and "
    "events the text names as entities (each with its name as written and a one-word type), and how they are "
    "related as relations (source and target are names from your entity list, type is a short verb phrase). "
    "Answer with the JSON object only. When the text names nothing, both lists are empty."
)

SCHEMA = {
    "type": "object",
    "properties": {
        "entities": {"type": "array", "maxItems": MAX_ENTITIES, "items": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                           "type": {"type": "string", "minLength": 1, "maxLength": MAX_TYPE}},
            "required": ["name", "type"], "additionalProperties": False}},
        "relations": {"type": "array", "maxItems": MAX_RELATIONS, "items": {
            "type": "object",
            "properties": {"source": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                           "target": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                           "type": {"type": "string", "minLength": 1, "maxLength": MAX_TYPE}},
            "required": ["source", "target", "type"], "additionalProperties": False}},
    },
    "required": ["entities", "relations"],
    "additionalProperties": False,
}
SCHEMA_JSON = json.dumps(SCHEMA)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class InvalidGraph(ValueError):
    """The model's reply is not the graph we asked for; the message says why."""


@dataclass(frozen=True, slots=True)
class Extracted:
    entities: list[tuple[str, str]]               # (name, type), names unique case-insensitively
    relations: list[tuple[str, str, str]]         # (source name, target name, type)


def prompt(text: str) -> str:
    return f"Text:\n{text}\n\nKnowledge graph as JSON:"


def _clean(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidGraph(f"{what} must be a non-empty string")
    text = " ".join(value.split())
    if len(text) > limit:
        raise InvalidGraph(f"{what} is longer than {limit} characters")
    return text


def parse_graph(reply: str) -> Extracted:
    text = reply.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidGraph(f"the model's reply is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("entities"), list) \
            or not isinstance(data.get("relations", []), list):
        raise InvalidGraph('the model\'s JSON is not {"entities": [...], "relations": [...]}')
    entities: dict[str, tuple[str, str]] = {}
    for item in data["entities"][:MAX_ENTITIES]:
        if not isinstance(item, dict):
            raise InvalidGraph("an entity is not an object")
        name = _clean(item.get("name"), MAX_NAME, "an entity's name")
        type_ = _clean(item.get("type"), MAX_TYPE, "an entity's type").lower()
        entities.setdefault(name.casefold(), (name, type_))
    relations: list[tuple[str, str, str]] = []
    for item in data.get("relations", [])[:MAX_RELATIONS]:
        if not isinstance(item, dict):
            raise InvalidGraph("a relation is not an object")
        source = _clean(item.get("source"), MAX_NAME, "a relation's source").casefold()
        target = _clean(item.get("target"), MAX_NAME, "a relation's target").casefold()
        type_ = _clean(item.get("type"), MAX_TYPE, "a relation's type").lower().replace(" ", "_")
        if source not in entities or target not in entities:
            raise InvalidGraph(f"a relation names an entity the reply does not list ({item.get('source')!r} -> "
                               f"{item.get('target')!r})")
        relations.append((entities[source][0], entities[target][0], type_))
    return Extracted(list(entities.values()), relations)
