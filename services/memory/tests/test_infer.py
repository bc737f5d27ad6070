"""``infer: true``: one model call per item (counted in the model server's own log), facts stored when the
reply is the JSON asked for, a skip with the reason when it is not; ``infer: false`` makes no model call.
On the real local model (SmolLM2-135M through llama.cpp) behind the real chat servicer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_memory import inference


def completions(log: Path) -> int:
    return log.read_text(errors="replace").count("POST /v1/chat/completions") if log.exists() else 0


async def test_infer_asks_the_model_once_per_item_and_stores_or_skips_with_a_reason(
        memory: Any, llama: tuple[str, Path], user: str) -> None:
    c = memory.client(user)
    before = completions(llama[1])
    conversation = "user: I moved to Porto last month.\nassistant: Nice! How do you like it?\nuser: I love it."
    reply = await c.AddMemories(m.AddMemoriesRequest(items=[m.MemoryInput(content=conversation)], infer=True))
    assert reply.model_calls == 1 and completions(llama[1]) - before == 1
    for result in reply.results:
        if result.event == "skipped":
            assert "JSON" in result.reason or "no facts" in result.reason
            assert not result.HasField("memory")
        else:
            assert result.event == "created" and json.loads(result.memory.metadata_json)["inferred"] is True
    listed = await c.ListMemories(m.ListMemoriesRequest())
    assert listed.page.total == sum(r.event == "created" for r in reply.results)


async def test_no_infer_makes_no_model_call(memory: Any, llama: tuple[str, Path], user: str) -> None:
    before = completions(llama[1])
    reply = await memory.client(user).AddMemories(m.AddMemoriesRequest(items=[
        m.MemoryInput(content="The user lives in Porto.")]))
    assert reply.model_calls == 0 and completions(llama[1]) == before and reply.results[0].event == "created"


@pytest.mark.parametrize("reply, facts", [
    ('{"facts": ["Lives in Porto."]}', ["Lives in Porto."]),
    ('```json\n{"facts": ["A", " "]}\n```', ["A"]),
    ('["B"]', ["B"]),
])
def test_fact_replies_that_parse(reply: str, facts: list[str]) -> None:
    assert inference.parse_facts(reply) == facts


@pytest.mark.parametrize("reply", ["Sure! Here are the facts: Porto", '{"facts": "Porto"}', '{"facts": [1, 2]}', ""])
def test_fact_replies_that_do_not_parse_say_why(reply: str) -> None:
    with pytest.raises(inference.InvalidFacts, match="JSON"):
        inference.parse_facts(reply)
