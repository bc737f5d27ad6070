"""Agent definitions: Markdown with YAML front matter, and the same fields from an API request.

No I/O here: ``parse_markdown`` takes the text and the name to blame in errors. A definition file
looks like this (the body is the agent's system prompt)::

    ---
    name: code-reviewer
    description: Reviews a diff for bugs, security problems and readability.
    model: tinyllama
    tools: read, search            # a comma-separated string or a list
    capabilities: [code, review]
    proactive_triggers: ["a pull request is opened"]
    temperature: 0.2
    max_tokens: 1024
    color: blue
    ---
    You are a careful code reviewer...

The id of a file-defined agent is its file name without ``.md``. ``specializations`` (used by a few of
the original system's files) is accepted and merged into ``capabilities``. Any other key is an error,
so that a misspelt field is reported instead of silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import yaml
from frontmatter.default_handlers import YAMLHandler
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from sutazai_agents.errors import DefinitionError

AGENT_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
DEFAULT_MODEL = "tinyllama"
_AGENT_ID = re.compile(AGENT_ID)
_YAML = YAMLHandler()


def _string_list(value: Any, *, split_commas: bool, lower: bool = False) -> tuple[str, ...]:
    """A list of non-empty strings, de-duplicated in order. ``None`` is the empty list; a string is
    split on commas when ``split_commas`` (``tools: read, write``), else taken as one item."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(",") if split_commas else [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("must be a list of strings or a comma-separated string")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"every item must be a string, got {type(item).__name__} {item!r}")
        item = item.strip()
        if lower:
            item = item.lower()
        if item and item not in out:
            out.append(item)
    return tuple(out)


CommaList = Annotated[tuple[str, ...], BeforeValidator(lambda v: _string_list(v, split_commas=True))]
Capabilities = Annotated[
    tuple[str, ...], BeforeValidator(lambda v: _string_list(v, split_commas=True, lower=True))
]
Triggers = Annotated[tuple[str, ...], BeforeValidator(lambda v: _string_list(v, split_commas=False))]


class AgentDefinition(BaseModel):
    """One agent, whatever its source. Frozen: a change is a new definition."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(pattern=AGENT_ID)
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=4000)
    model: str = Field(DEFAULT_MODEL, min_length=1, max_length=200)
    tools: CommaList = ()
    color: str = Field("", max_length=32)
    proactive_triggers: Triggers = ()
    capabilities: Capabilities = ()
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=131072)
    system_prompt: str = Field(min_length=1, max_length=100_000)
    # Long-term memory: the task worker adds the task's user+agent memories to the prompt (issue #9).
    memory: bool = False

    def searchable_text(self) -> str:
        return " ".join((self.id, self.name, self.description, *self.capabilities)).lower()


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or ""
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (allowed: " + ", ".join(sorted(_FILE_FIELDS)) + ")"
        elif error["type"] == "missing":
            message = "is required"
        problems.append((field, message))
    return problems


_FILE_FIELDS = set(AgentDefinition.model_fields) - {"id", "system_prompt"} | {"specializations"}


def validate_definition(data: dict[str, Any], source: str = "request") -> AgentDefinition:
    """Validate already-parsed fields (an API request); raise ``DefinitionError`` naming each bad field."""
    try:
        return AgentDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(source, _problems(exc)) from None


def id_from_filename(filename: str) -> str:
    """``code-reviewer.md`` → ``code-reviewer``."""
    return filename.rsplit("/", 1)[-1].removesuffix(".md")


def parse_markdown(text: str, source: str) -> AgentDefinition:
    """Parse one definition file's text. ``source`` is the file's name, used as the id (without ``.md``)
    and in every error message."""
    agent_id = id_from_filename(source)
    if not _AGENT_ID.match(agent_id):
        raise DefinitionError(
            source, [("id", "the file name gives the id: lower-case letters, digits and '-', at most 64")]
        )
    text = text.lstrip("\ufeff").strip()
    if not _YAML.detect(text):
        raise DefinitionError(source, [("", "no YAML front matter: the file must start with a '---' line")])
    try:
        front, body = _YAML.split(text)
        meta = _YAML.load(front)
    except ValueError:
        raise DefinitionError(source, [("", "the front matter has no closing '---' line")]) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(source, [("", f"the front matter is not valid YAML: {exc}")]) from None
    if not isinstance(meta, dict):
        raise DefinitionError(source, [("", "the front matter must be a YAML mapping of field: value")])
    meta = {str(k): v for k, v in meta.items()}
    if "id" in meta:
        raise DefinitionError(source, [("id", "not a front matter field: the file name gives the id")])
    if "system_prompt" in meta:
        raise DefinitionError(source, [("system_prompt", "not a front matter field: the body is the system prompt")])
    specializations = meta.pop("specializations", None)
    if specializations is not None:
        try:
            extra = _string_list(specializations, split_commas=True, lower=True)
            meta["capabilities"] = (
                *_string_list(meta.get("capabilities"), split_commas=True, lower=True), *extra
            )
        except ValueError as exc:
            raise DefinitionError(source, [("specializations", str(exc))]) from None
    data = {**meta, "id": agent_id, "system_prompt": body.strip()}
    if not data["system_prompt"]:
        raise DefinitionError(
            source, [("system_prompt", "the body after the front matter (the system prompt) is empty")]
        )
    return validate_definition(data, source)
