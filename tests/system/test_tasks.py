"""Tasks over REST against the running stack (two workers, the machine's Postgres and NATS)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("tasks"), stack_servers) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers=stack.admin_headers, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def user_client(stack: RunningStack, client: httpx.Client) -> Iterator[httpx.Client]:
    name = "tasks-" + uuid.uuid4().hex[:8]
    client.post("/api/v1/auth/users", json={"username": name, "password": "password-123"}).raise_for_status()
    token = httpx.post(stack.url + "/api/v1/auth/login",
                       json={"username": name, "password": "password-123"}).json()["access_token"]
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        yield http


def _final(client: httpx.Client, task_id: str, timeout_s: float = 20) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task = client.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed", "cancelled", "dead") else None

    task = wait_until(done, timeout_s)
    assert task, client.get(f"/api/v1/tasks/{task_id}").json()
    return task  # type: ignore[no-any-return]


def test_an_echo_task_is_accepted_then_completes_with_its_payload(client: httpx.Client) -> None:
    response = client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {"n": 7, "s": "x"}})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and uuid.UUID(body["task_id"]) and "message" in body["result"]
    task = _final(client, body["task_id"])
    assert (task["status"], task["result"], task["attempts"]) == ("completed", {"n": 7, "s": "x"}, 1)
    assert task["started_at"] and task["finished_at"]


def test_the_same_idempotency_key_returns_the_same_task(client: httpx.Client) -> None:
    body = {"task_type": "echo", "payload": {"a": 1}, "idempotency_key": "key-" + uuid.uuid4().hex}
    first = client.post("/api/v1/tasks", json=body).json()["task_id"]
    second = client.post("/api/v1/tasks", json=body).json()["task_id"]
    assert first == second


def test_bad_requests_are_refused_and_create_nothing(client: httpx.Client) -> None:
    before = client.get("/api/v1/tasks", params={"limit": 1}).json()["total"]
    cases = [
        ({"task_type": "echo"}, 422),                                  # payload missing
        ({"task_type": "echo", "payload": []}, 422),                   # payload not an object
        ({"task_type": "rm -rf", "payload": {}}, 400),                 # unknown type
        ({"task_type": "agent", "payload": {"input": "hi"}}, 400),     # agent without agent_id
        ({"task_type": "echo", "payload": {}, "max_attempts": 0}, 422),
        ({"task_type": "echo", "payload": {}, "priority": 10**6}, 422),
    ]
    for body, status in cases:
        response = client.post("/api/v1/tasks", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.post("/api/v1/tasks", content=b"{", headers={"content-type": "application/json"}).status_code == 422
    assert client.get("/api/v1/tasks", params={"limit": 1}).json()["total"] == before
    assert client.get("/api/v1/tasks/not-a-uuid").status_code == 400
    assert client.get(f"/api/v1/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/v1/tasks", params={"status": "bogus"}).status_code == 422


def test_users_see_only_their_own_tasks(client: httpx.Client, user_client: httpx.Client) -> None:
    mine = user_client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {}}).json()["task_id"]
    assert client.get(f"/api/v1/tasks/{mine}").status_code == 404  # even an admin's own listing is theirs
    listed = user_client.get("/api/v1/tasks").json()
    assert [t["task_id"] for t in listed["items"]] == [mine] and listed["total"] == 1
    assert user_client.get("/api/v1/tasks/dead").status_code == 403
    assert httpx.get(str(client.base_url) + "/api/v1/tasks").status_code == 401


def test_listing_filters_and_pages(client: httpx.Client) -> None:
    ids = [client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {"i": i}}).json()["task_id"]
           for i in range(3)]
    for task_id in ids:
        _final(client, task_id)
    page = client.get("/api/v1/tasks", params={"status": "completed", "limit": 2}).json()
    assert len(page["items"]) == 2 and page["total"] >= 3
    assert all(t["status"] == "completed" for t in page["items"])
    assert client.get("/api/v1/tasks", params={"limit": 101}).status_code == 422


def test_a_finished_task_cannot_be_cancelled(client: httpx.Client) -> None:
    task_id = client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {}}).json()["task_id"]
    _final(client, task_id)
    response = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert response.status_code == 409 and "already completed" in response.json()["detail"]


def test_events_stream_the_current_state_first_for_a_late_client(client: httpx.Client) -> None:
    task_id = client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {"e": 1}}).json()["task_id"]
    _final(client, task_id)
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == "event: state"
    first = json.loads(lines[1].removeprefix("data: "))
    assert (first["status"], first["result"]) == ("completed", {"e": 1})


def test_events_follow_a_task_from_queued_to_completed(client: httpx.Client) -> None:
    # A slow lane: many low-priority tasks ahead keep ours queued long enough to connect.
    for _ in range(50):
        client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {}})
    task_id = client.post("/api/v1/tasks", json={"task_type": "echo", "payload": {}}).json()["task_id"]
    started = time.monotonic()
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
        lines = list(response.iter_lines())
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event:")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
    # The current state first; the stream ends when the task does, so the last event says completed
    # (a "completed" event, or the first "state" itself when the task finished before we connected).
    assert events[0] == "state" and data[-1]["status"] == "completed", list(zip(events, data, strict=True))
    assert time.monotonic() - started < 20
    assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"


def test_bulk_submission_queues_all_in_order_or_none(client: httpx.Client) -> None:
    tasks = [{"task_type": "echo", "payload": {"i": i}} for i in range(50)]
    response = client.post("/api/v1/tasks/batch", json={"tasks": tasks})
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert len(items) == 50 and all(i["status"] == "queued" for i in items)
    finals = [_final(client, i["task_id"]) for i in items]
    assert [f["result"] for f in finals] == [{"i": i} for i in range(50)]

    before = client.get("/api/v1/tasks", params={"limit": 1}).json()["total"]
    bad = client.post("/api/v1/tasks/batch", json={"tasks": [tasks[0], {"task_type": "nope", "payload": {}}]})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("tasks[1].task_type:")
    assert client.post("/api/v1/tasks/batch", json={"tasks": []}).status_code == 422
    assert client.post("/api/v1/tasks/batch", json={"tasks": [tasks[0]] * 501}).status_code == 422
    assert client.get("/api/v1/tasks", params={"limit": 1}).json()["total"] == before


def test_an_echo_payload_comes_back_with_the_same_values_and_json_types(client: httpx.Client) -> None:
    """Not Python equality (1 == 1.0): the JSON text and the type of each value."""
    raw = '{"task_type": "echo", "payload": {"big": 12345678901234567891, "f": 1.0, "n": 7, "s": "naïve ☃"}}'
    response = client.post("/api/v1/tasks", content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    _final(client, response.json()["task_id"])
    reply = client.get(f"/api/v1/tasks/{response.json()['task_id']}")
    task = json.loads(reply.text)
    for value in (task["payload"], task["result"]):
        assert value == {"big": 12345678901234567891, "f": 1.0, "n": 7, "s": "naïve ☃"}
        assert [type(value[k]) for k in ("big", "f", "n", "s")] == [int, float, int, str]
    text = reply.text.replace(" ", "")
    assert text.count('"big":12345678901234567891') == 2 and text.count('"f":1.0') == 2  # payload and result
    assert text.count('"n":7,') + text.count('"n":7}') == 2


@pytest.mark.parametrize("payload", [[1, 2], "text", 7, None])
def test_a_payload_that_is_not_an_object_is_a_422_problem_and_creates_nothing(
    client: httpx.Client, payload: Any
) -> None:
    before = client.get("/api/v1/tasks", params={"limit": 1}).json()["total"]
    response = client.post("/api/v1/tasks", json={"task_type": "echo", "payload": payload})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and any("payload" in str(e) for e in problem.get("errors", [problem]))
    assert client.get("/api/v1/tasks", params={"limit": 1}).json()["total"] == before


def test_concurrent_submissions_each_get_their_own_task_and_a_bad_one_only_its_own_refusal(
    stack: RunningStack, client: httpx.Client,
) -> None:
    """The gateway sends a burst of one user's POSTs as one CreateTasks call (all or none on the tasks side):
    refused for one bad item, the batch is sent again item by item, so only that request fails; one idempotency
    key used twice in a burst still names one task."""
    import asyncio

    before = client.get("/api/v1/tasks", params={"limit": 1}).json()["total"]
    key = f"burst-{uuid.uuid4().hex}"
    bodies: list[dict[str, Any]] = [{"task_type": "echo", "payload": {"n": i}} for i in range(40)]
    bodies[7] = bodies[29] = {"task_type": "rm -rf", "payload": {}}  # refused by the tasks service: 400
    bodies[11] = bodies[12] = {"task_type": "echo", "payload": {"n": "same"}, "idempotency_key": key}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url, headers=stack.admin_headers, timeout=30) as http:
            return await asyncio.gather(*(http.post("/api/v1/tasks", json=b) for b in bodies))

    replies = asyncio.run(burst())
    refused = [i for i, r in enumerate(replies) if r.status_code != 202]
    assert refused == [7, 29], [(i, replies[i].status_code, replies[i].text) for i in refused]
    assert all(replies[i].status_code == 400 and "task_type" in replies[i].json()["detail"] for i in refused)
    ids = [r.json()["task_id"] for i, r in enumerate(replies) if i not in refused]
    assert replies[11].json()["task_id"] == replies[12].json()["task_id"]
    assert len(set(ids)) == 37  # 38 accepted, two of them the same idempotent task
    assert client.get("/api/v1/tasks", params={"limit": 1}).json()["total"] == before + 37
    for i in (0, 20, 39):
        assert _final(client, replies[i].json()["task_id"])["status"] == "completed"
    # the burst did go as batches, and one was refused whole and sent again item by item
    methods = client.get("/api/v1/performance/metrics").json()["services"]["tasks"]["methods"]
    batches = methods["sutazai.tasks.v1.TaskService/CreateTasks"]["codes"]
    assert batches.get("OK", 0) >= 1 and batches.get("INVALID_ARGUMENT", 0) >= 1, methods
