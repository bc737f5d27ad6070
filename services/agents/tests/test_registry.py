"""Search, filters, paging, merging of sources and status, on plain values."""

from datetime import UTC, datetime

import pytest
from sutazai_agents.definitions import validate_definition
from sutazai_agents.registry import MAX_LIMIT, Agent, merge, select, status_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def agent(agent_id: str, *, capabilities: tuple[str, ...] = (), description: str = "does things",
          source: str = "file", model: str = "tinyllama") -> Agent:
    d = validate_definition({"id": agent_id, "name": agent_id.replace("-", " "), "description": description,
                             "capabilities": list(capabilities), "system_prompt": "p", "model": model})
    return Agent(d, source, NOW)  # type: ignore[arg-type]


AGENTS = [
    agent("translator", capabilities=("translation", "text"), description="Translates between languages"),
    agent("summarizer", capabilities=("summarization", "text"), description="Condenses long documents"),
    agent("sql-helper", capabilities=("sql", "code"), description="Writes SQL queries"),
    agent("code-reviewer", capabilities=("code", "review"), description="Reviews diffs for bugs"),
]


def ids(page_items: list[Agent]) -> list[str]:
    return [a.id for a in page_items]


def test_everything_sorted_by_id_by_default() -> None:
    page = select(AGENTS)
    assert ids(page.items) == ["code-reviewer", "sql-helper", "summarizer", "translator"]
    assert (page.total, page.limit, page.offset) == (4, 50, 0)


def test_filter_by_capability_is_exact_and_case_insensitive() -> None:
    assert ids(select(AGENTS, capability="CODE").items) == ["code-reviewer", "sql-helper"]
    assert select(AGENTS, capability="cod").total == 0


def test_text_search_needs_every_word_somewhere() -> None:
    assert ids(select(AGENTS, query="sql").items) == ["sql-helper"]
    assert ids(select(AGENTS, query="long DOCUMENTS").items) == ["summarizer"]
    assert ids(select(AGENTS, query="text languages").items) == ["translator"]
    assert select(AGENTS, query="text bugs").total == 0


def test_filter_and_search_combine() -> None:
    assert ids(select(AGENTS, capability="code", query="diffs").items) == ["code-reviewer"]


def test_paging_returns_a_slice_and_the_total() -> None:
    first = select(AGENTS, limit=3)
    second = select(AGENTS, limit=3, offset=3)
    assert ids(first.items) + ids(second.items) == ids(select(AGENTS).items)
    assert first.total == second.total == 4
    assert select(AGENTS, offset=10).items == []
    assert select(AGENTS, limit=1000).limit == MAX_LIMIT
    with pytest.raises(ValueError, match="negative"):
        select(AGENTS, limit=-1)


def test_a_file_agent_hides_a_stored_one_of_the_same_id() -> None:
    stored = [agent("summarizer", source="api", description="stored"), agent("mine", source="api")]
    merged = merge({"summarizer": AGENTS[1]}, stored)
    assert merged["summarizer"].source == "file" and merged["mine"].source == "api"


def test_status_follows_the_served_models() -> None:
    assert status_of("tinyllama", frozenset({"tinyllama", "smollm2"})) == "active"
    assert status_of("TinyLlama", frozenset({"tinyllama"})) == "active"
    assert status_of("gpt-4", frozenset({"tinyllama"})) == "unavailable"
    assert status_of("tinyllama", frozenset()) == "unavailable"
    assert status_of("tinyllama", None) == "unknown"
