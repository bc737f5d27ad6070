"""deploy/compose.yaml validates against the Compose Specification and follows the rules of the issue:
health checks everywhere, start order on health, named volumes, the edge on 10010, secrets only from .env."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.tests import manifests

PLATFORM = ("gateway", "agents", "tasks", "tasks-worker", "mesh", "chat", "memory")
INFRA = ("postgres", "redis", "nats", "consul", "qdrant", "neo4j", "ollama", "envoy")
ONE_SHOT = ("ollama-pull",)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(manifests.COMPOSE.read_text())


def test_compose_validates_against_the_compose_specification() -> None:
    assert manifests.validate_compose() == []


def test_every_long_running_service_has_a_health_check_and_waits_on_health(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {*PLATFORM, *INFRA, *ONE_SHOT}
    for name in (*PLATFORM, *INFRA):
        assert services[name]["healthcheck"]["test"], name
        for dependency, condition in services[name].get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == {"condition": expected}, (name, dependency)
    assert services["ollama-pull"]["restart"] == "no"
    assert services["chat"]["depends_on"]["ollama-pull"] == {"condition": "service_completed_successfully"}


def test_data_lives_in_named_volumes(compose: dict) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared and {"postgres-data", "nats-data", "neo4j-data", "qdrant-data", "ollama-models"} <= used


def test_the_edge_is_envoy_on_10010_in_front_of_gateway_replicas(compose: dict) -> None:
    services = compose["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published == ["${EDGE_PORT:-10010}:10010"]  # nothing but the edge is published
    assert "./envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro" in services["envoy"]["volumes"]
    assert services["gateway"]["deploy"]["replicas"] == "${GATEWAY_REPLICAS:-2}"


def test_the_worker_is_the_tasks_image_with_another_command(compose: dict) -> None:
    tasks, worker = compose["services"]["tasks"], compose["services"]["tasks-worker"]
    assert worker["image"] == tasks["image"] and "build" not in worker
    assert worker["command"] == ["worker"] and tasks["command"] == ["server"]


def test_services_find_each_other_through_consul(compose: dict) -> None:
    for name in PLATFORM:
        assert compose["services"][name]["environment"]["CONSUL_HTTP_ADDR"] == "consul:8500", name
        assert compose["services"][name]["depends_on"]["consul"] == {"condition": "service_healthy"}


def test_the_env_example_holds_no_secret() -> None:
    example = (manifests.DEPLOY / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, re.M))
    for name in ("POSTGRES_PASSWORD", "NEO4J_PASSWORD", "SUTAZAI_GATEWAY_JWT_SECRET",
                 "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_PASSWORD", "SUTAZAI_GATEWAY_BOOTSTRAP_API_KEY"):
        assert values[name] == "", name
    # compose refuses to start without them rather than using a default
    text = manifests.COMPOSE.read_text()
    for name in ("POSTGRES_PASSWORD", "NEO4J_PASSWORD", "SUTAZAI_GATEWAY_JWT_SECRET"):
        assert re.search(r"\$\{" + name + r":\?", text), name


# ---- a broken compose file fails the check


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = manifests.COMPOSE.read_text()
    assert old in text
    path = tmp_path / "compose.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_an_unknown_service_key_fails(tmp_path: Path) -> None:
    path = broken(tmp_path, "    restart: unless-stopped\n    command: [\"redis-server\"",
                  "    restart: unless-stopped\n    restarts: always\n    command: [\"redis-server\"")
    problems = manifests.validate_compose(path)
    assert any("services/redis" in p and "restarts" in p for p in problems), problems


def test_a_wrong_depends_on_condition_fails(tmp_path: Path) -> None:
    path = broken(tmp_path, "ollama: {condition: service_healthy}\n      ollama-pull",
                  "ollama: {condition: healthy}\n      ollama-pull")
    problems = manifests.validate_compose(path)
    assert any("services/chat/depends_on" in p for p in problems), problems


def test_a_file_that_is_not_yaml_fails(tmp_path: Path) -> None:
    path = broken(tmp_path, "volumes:\n  postgres-data:", "volumes:\n  postgres-data: [")
    assert manifests.validate_compose(path)[0].startswith("compose.yaml: not YAML")
