"""An agent task end to end: the shipped summarizer agent, run by a worker through the chat service
on the local model, with its tokens streamed as task events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack

pytestmark = pytest.mark.system

TEXT = (
    "The city council met on Monday. It approved a new bike lane on Main Street, to open in May, "
    "and postponed the vote on the library budget to next month because two members were absent."
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("agent-tasks"), stack_servers) as running:
        yield running


def test_an_agent_task_completes_with_a_model_answer_and_streams_its_tokens(stack: RunningStack) -> None:
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=30) as client:
        created = client.post("/api/v1/tasks", json={
            "task_type": "agent", "agent_id": "summarizer", "payload": {"input": TEXT}, "priority": 10,
        })
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        events: list[tuple[str, dict]] = []  # type: ignore[type-arg]
        with client.stream("GET", f"/api/v1/tasks/{task_id}/events", timeout=120) as response:
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))
        task = client.get(f"/api/v1/tasks/{task_id}").json()

    assert task["status"] == "completed", task
    output = task["result"]["output"]
    assert isinstance(output, str) and output.strip()
    assert task["result"]["agent_id"] == "summarizer"
    tokens = [data["token"] for kind, data in events if kind == "progress"]
    kinds = [kind for kind, _ in events]
    if kinds[0] == "state" and events[0][1]["status"] == "completed":
        pytest.fail("the task finished before the events stream connected; nothing streamed to check")
    assert len(tokens) > 1 and "".join(tokens) == output  # the tokens as they came add up to the answer
    assert kinds[-1] == "completed"
