"""The registry's rules, without I/O: which agent wins an id, search and filtering, paging, status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sutazai_agents.definitions import AgentDefinition

Source = Literal["file", "api"]
Status = Literal["active", "unavailable", "unknown"]
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Agent:
    definition: AgentDefinition
    source: Source
    updated_at: datetime

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Agent]
    total: int
    limit: int
    offset: int


def merge(file_agents: Mapping[str, Agent], api_agents: Iterable[Agent]) -> dict[str, Agent]:
    """Every agent by id. A file wins over a stored agent of the same id: files are the operator's
    configuration, and the API refuses to create an id a file holds, so a clash means a file was added
    later; the stored agent is hidden (not deleted) until the file goes away."""
    merged = {a.id: a for a in api_agents}
    merged.update(file_agents)
    return merged


def clamp_page(limit: int, offset: int) -> tuple[int, int]:
    """The server's default for a limit of 0; limits above ``MAX_LIMIT`` are capped; negatives are errors."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    return (DEFAULT_LIMIT if limit == 0 else min(limit, MAX_LIMIT)), offset


def matches(agent: Agent, capability: str = "", query: str = "") -> bool:
    """``capability`` matches one of the agent's capabilities exactly (case-insensitively); every
    whitespace-separated word of ``query`` must appear in its id, name, description or capabilities."""
    definition = agent.definition
    if capability and capability.strip().lower() not in definition.capabilities:
        return False
    if query:
        text = definition.searchable_text()
        return all(word in text for word in query.lower().split())
    return True


def select(agents: Iterable[Agent], *, capability: str = "", query: str = "", limit: int = 0, offset: int = 0) -> Page:
    """The agents that match, ordered by id, one page of them, and how many matched in all."""
    limit, offset = clamp_page(limit, offset)
    found = sorted((a for a in agents if matches(a, capability, query)), key=lambda a: a.id)
    return Page(found[offset : offset + limit], len(found), limit, offset)


def status_of(model: str, served: frozenset[str] | None) -> Status:
    """``served`` is the set of model names and aliases some backend serves (lower-case), or None when
    that is not known right now (the chat service is unreachable): then the status is ``unknown``."""
    if served is None:
        return "unknown"
    return "active" if model.lower() in served else "unavailable"
