import json

import pytest
from sutazai_tasks.errors import InvalidTaskError
from sutazai_tasks.model import backoff_s, parse_task_id, priority_class, validate_new_task


def _new(**overrides):  # type: ignore[no-untyped-def]
    fields = dict(owner_id="u", task_type="echo", payload_json=b'{"a": 1}', priority=0, agent_id="",
                  idempotency_key="", timeout_s=0, max_attempts=0)
    if "payload" in overrides:
        overrides["payload_json"] = json.dumps(overrides.pop("payload")).encode()
    fields.update(overrides)
    return validate_new_task(**fields)


def test_priority_bands_follow_the_original() -> None:
    assert [priority_class(p) for p in (-5, 0, 4, 5, 9, 10, 100)] == [
        "low", "low", "low", "normal", "normal", "high", "high"
    ]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(30) == 60.0
    assert backoff_s(2, base_s=0.1) == pytest.approx(0.2)


def test_defaults_fill_zero_fields() -> None:
    task = _new()
    assert (task.max_attempts, task.timeout_s, task.idempotency_key, task.agent_id) == (3, 300, None, None)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"task_type": "shell"}, "task_type"),
        ({"task_type": "agent"}, "agent_id"),
        ({"task_type": "agent", "agent_id": "summarizer"}, "payload.input"),
        ({"task_type": "agent", "agent_id": "summarizer", "payload": {"input": "  "}}, "payload.input"),
        ({"priority": 5000}, "priority"),
        ({"max_attempts": 11}, "max_attempts"),
        ({"timeout_s": 7200}, "timeout_s"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ({"payload": {"big": "x" * 300_000}}, "payload"),
        ({"payload": [1, 2]}, "payload"),
        ({"payload": "text"}, "payload"),
        ({"payload_json": b"{not json"}, "payload"),
        ({"payload_json": b"\xff\xfe"}, "payload"),
    ],
)
def test_bad_input_is_refused_naming_the_field(overrides: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidTaskError, match=f"^{field}:"):
        _new(**overrides)


def test_task_ids_must_be_uuids() -> None:
    assert parse_task_id("8745645D-0CFE-4F0E-A710-B08F981DA504") == "8745645d-0cfe-4f0e-a710-b08f981da504"
    with pytest.raises(InvalidTaskError, match="not a UUID"):
        parse_task_id("42")


def test_a_payload_is_kept_as_the_client_sent_it() -> None:
    raw = '{"big": 12345678901234567891, "f": 1.0, "n": 7, "s": "naïve ☃"}'
    task = _new(payload_json=raw.encode())
    assert task.payload_json == raw  # no decode/encode in between: 1.0 stays 1.0, the big int stays whole
    assert _new(payload_json=b"").payload_json == "{}"
def test_a_mesh_task_names_its_service() -> None:
    from sutazai_tasks.errors import InvalidTaskError
    from sutazai_tasks.model import validate_new_task

    fields = dict(owner_id="u", priority=0, agent_id="", idempotency_key="", timeout_s=0, max_attempts=0)
    task = validate_new_task(task_type="mesh", payload_json=b'{"service": "billing", "payload": {"a": 1}}', **fields)
    assert task.task_type == "mesh"
    with pytest.raises(InvalidTaskError, match=r"payload\.service"):
        validate_new_task(task_type="mesh", payload_json=b'{"payload": {}}', **fields)
