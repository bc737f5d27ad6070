"""Parsing and validating agent definitions: good files, and bad ones whose errors name file and field."""

from pathlib import Path

import pytest
from sutazai_agents.definitions import DEFAULT_MODEL, parse_markdown, validate_definition
from sutazai_agents.errors import DefinitionError
from sutazai_agents.files import FileAgents

REPO_AGENTS = Path(__file__).resolve().parents[3] / "agents"

GOOD = """---
name: code-reviewer
description: Reviews diffs.
model: tinyllama
tools: read_file, search_code , read_file
color: red
capabilities: [Code, review]
specializations: security
proactive_triggers:
  - a diff is shared, or a PR opens
temperature: 0.1
max_tokens: 1200
---

You review code.

Carefully.
"""


def test_a_full_file_parses_into_every_field() -> None:
    agent = parse_markdown(GOOD, "code-reviewer.md")
    assert agent.id == "code-reviewer"
    assert agent.name == "code-reviewer"
    assert agent.tools == ("read_file", "search_code")  # comma string split, stripped, de-duplicated
    assert agent.capabilities == ("code", "review", "security")  # lower-cased, specializations merged
    assert agent.proactive_triggers == ("a diff is shared, or a PR opens",)  # a trigger is never split
    assert (agent.temperature, agent.max_tokens, agent.color) == (0.1, 1200, "red")
    assert agent.system_prompt == "You review code.\n\nCarefully."


def test_optional_fields_take_their_defaults_and_lists_are_accepted() -> None:
    agent = parse_markdown("---\nname: x\ndescription: d\ntools: [a, b]\n---\nPrompt\n", "x.md")
    assert agent.model == DEFAULT_MODEL
    assert agent.tools == ("a", "b")
    assert agent.capabilities == () and agent.proactive_triggers == ()
    assert agent.temperature is None and agent.max_tokens is None


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("---\nname: x\ndescription: d\ntemperature: 3\n---\nP", "temperature", "less than or equal to 2"),
        ("---\nname: x\ndescription: d\ntemperature: hot\n---\nP", "temperature", "valid number"),
        ("---\nname: x\ndescription: d\nmax_tokens: 0\n---\nP", "max_tokens", "greater than or equal to 1"),
        ("---\ndescription: d\n---\nP", "name", "is required"),
        ("---\nname: x\n---\nP", "description", "is required"),
        ("---\nname: x\ndescription: d\ncapabilties: [a]\n---\nP", "capabilties", "unknown field"),
        ("---\nname: x\ndescription: d\ntools: 5\n---\nP", "tools", "list of strings"),
        ("---\nname: x\ndescription: d\ntools: [a, 3]\n---\nP", "tools", "must be a string"),
        ("---\nname: 12\ndescription: d\n---\nP", "name", "valid string"),
        ("---\nname: x\ndescription: d\n---\n   \n", "system_prompt", "is empty"),
        ("---\nname: x\ndescription: d\nid: other\n---\nP", "id", "file name gives the id"),
    ],
)
def test_a_bad_field_is_named_with_the_file(text: str, field: str, words: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_markdown(text, "broken.md")
    assert caught.value.source == "broken.md"
    assert field in [f for f, _ in caught.value.problems], caught.value.problems
    assert str(caught.value).startswith(f"broken.md: {field}: ") or f"; {field}: " in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("just a prompt, no front matter", "no YAML front matter"),
        ("---\nname: [unclosed\n---\nP", "not valid YAML"),
        ("---\n- a\n- b\n---\nP", "YAML mapping"),
        ("---\nname: x\ndescription: d\n", "no closing '---' line"),
    ],
)
def test_a_malformed_document_is_reported_with_the_file(text: str, words: str) -> None:
    with pytest.raises(DefinitionError, match=f"^broken.md: .*{words}"):
        parse_markdown(text, "broken.md")


def test_the_file_name_must_make_a_valid_id() -> None:
    with pytest.raises(DefinitionError, match=r"^Bad Name\.md: id: the file name gives the id"):
        parse_markdown(GOOD, "Bad Name.md")


def test_every_problem_of_a_request_is_listed() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition({"id": "Not OK", "name": "", "description": "d", "system_prompt": "p", "x": 1})
    fields = {f for f, _ in caught.value.problems}
    assert fields == {"id", "name", "x"}
    assert str(caught.value).startswith("request: ")


def test_the_shipped_agents_are_all_valid_and_useful() -> None:
    files = FileAgents(REPO_AGENTS)
    files.load_all()
    shipped = sorted(p.stem for p in REPO_AGENTS.glob("*.md") if p.name != "README.md")
    assert sorted(files.agents) == shipped  # no shipped file was skipped as invalid
    assert len(shipped) >= 12
    for needed in ("summarizer", "code-reviewer", "sql-helper", "translator", "test-writer",
                   "incident-triager", "research-planner", "data-extractor"):
        assert needed in files.agents
    for agent in files.agents.values():
        d = agent.definition
        assert d.model == "tinyllama", d.id
        assert d.capabilities, d.id
        assert len(d.system_prompt) > 600, d.id  # a real prompt, not a one-liner
