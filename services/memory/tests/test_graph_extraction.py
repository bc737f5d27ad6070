"""``extract_graph: true``: one model call per stored memory (counted in the model server's own log) with a
JSON schema; entities and relations upserted into the graph in the memory's scope; an invalid reply or a
failed model call is a skip with its reason, and the memory is stored all the same. On the real local model
(SmolLM2-135M through llama.cpp, behind the real chat servicer): it is weak, so the test proves the
mechanism (one call, what came back went into the graph, or a plain reason) rather than the graph's quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_memory import graph_extraction
from sutazai_memory.chat import ChatClient
from sutazai_memory.memories import Memories
from sutazai_memory.model import NewMemory, Scope
from sutazai_runtime.identity import Identity


def completions(log: Path) -> int:
    return log.read_text(errors="replace").count("POST /v1/chat/completions") if log.exists() else 0


async def test_one_model_call_per_memory_and_the_graph_gets_what_the_model_found(
        memory: Any, llama: tuple[str, Path], user: str) -> None:
    c = memory.client(user)
    before = completions(llama[1])
    reply = await c.AddMemories(m.AddMemoriesRequest(items=[
        m.MemoryInput(content="Ada Lovelace worked with Charles Babbage in London.", scope=m.Scope(agent_id="bio"))],
        extract_graph=True))
    assert reply.model_calls == 1 and completions(llama[1]) - before == 1
    result = reply.results[0]
    assert result.event == "created" and result.HasField("graph")  # stored whatever the model said
    assert (await c.GetMemory(m.GetMemoryRequest(id=result.memory.id))).content.startswith("Ada Lovelace")
    listed = await c.ListEntities(m.ListEntitiesRequest())
    if result.graph.skipped:
        assert result.graph.entities == 0 and listed.page.total == 0
    else:
        assert result.graph.entities == listed.page.total >= 1
        assert {e.scope.agent_id for e in listed.entities} == {"bio"}  # in the memory's scope

    again = await c.AddMemories(m.AddMemoriesRequest(items=[
        m.MemoryInput(content="Ada Lovelace worked with Charles Babbage in London.", scope=m.Scope(agent_id="bio"))],
        extract_graph=True))
    assert again.results[0].event == "duplicate" and again.model_calls == 0  # nothing new, no model call


async def test_a_failed_model_call_is_a_skip_with_the_reason_and_the_memory_is_kept(memory: Any, user: str) -> None:
    parts = memory.built.servicer.memories
    chat = ChatClient(memory.built.chat, infer_model="no-such-model")  # chat refuses an unknown model
    memories = Memories(parts.store, parts.index, chat, parts.graph)
    outcomes, calls = await memories.add(Identity(user), [NewMemory("Grace Hopper wrote COBOL.", scope=Scope())],
                                         extract_graph=True)
    assert calls == 1 and outcomes[0].event == "created"
    assert outcomes[0].graph is not None and outcomes[0].graph.entities == 0
    assert outcomes[0].graph.skipped.startswith("the model call failed")
    assert (await memory.client(user).ListMemories(m.ListMemoriesRequest())).page.total == 1


@pytest.mark.parametrize("reply, entities, relations", [
    ('{"entities": [{"name": "Ada", "type": "Person"}, {"name": "London", "type": "place"}], '
     '"relations": [{"source": "ada", "target": "London", "type": "lived in"}]}',
     [("Ada", "person"), ("London", "place")], [("Ada", "London", "lived_in")]),
    ('```json\n{"entities": [], "relations": []}\n```', [], []),
    ('{"entities": [{"name": "X", "type": "t"}, {"name": "x", "type": "t"}], "relations": []}', [("X", "t")], []),
])
def test_graph_replies_that_parse(reply: str, entities: list[Any], relations: list[Any]) -> None:
    found = graph_extraction.parse_graph(reply)
    assert found.entities == entities and found.relations == relations


@pytest.mark.parametrize("reply, why", [
    ("Ada knows Charles.", "not valid JSON"),
    ('{"entities": "Ada"}', "not {"),
    ('{"entities": [{"name": "", "type": "person"}], "relations": []}', "non-empty"),
    ('{"entities": [{"name": "Ada", "type": "person"}], "relations": [{"source": "Ada", "target": "Bob", '
     '"type": "knows"}]}', "does not list"),
])
def test_graph_replies_that_do_not_parse_say_why(reply: str, why: str) -> None:
    with pytest.raises(graph_extraction.InvalidGraph, match=why):
        graph_extraction.parse_graph(reply)
