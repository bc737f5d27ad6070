"""One configuration surface: every environment variable a service reads (introspected from its
pydantic-settings classes) appears under the same name in compose's environment for that service and in the
Kubernetes ConfigMap/Secret, and neither names anything the services do not read.

When this fails after a merge, the message lists, per file, the names to add or remove."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest
import yaml

from deploy.tests import manifests
from deploy.tests.settings_names import Setting, service_of, service_settings

COMPOSE_SERVICES = {"gateway": "gateway", "agents": "agents", "tasks": "tasks", "tasks-worker": "tasks",
                    "mesh": "mesh", "chat": "chat", "memory": "memory"}
SECRET_TEMPLATE = manifests.K8S / "base" / "config" / "secret.example.yaml"
CONFIG_ENV = manifests.K8S / "base" / "config" / "sutazai.env"

# Names the manifests already wire for settings that branches in flight add (mesh: Consul registry and
# Service-DNS discovery; memory: Qdrant, Neo4j, chat for embeddings). Once a service reads one, the test
# asks for its removal from here.
PENDING = {
}
# Settings Kubernetes leaves unset on purpose (a ConfigMap cannot hold "unset"; an empty value is not unset).
K8S_UNSET = {
    "SUTAZAI_CHAT_BACKENDS_FILE": "chat's backends come from SUTAZAI_MODEL_URL / SUTAZAI_EMBEDDINGS_URL",
    "SUTAZAI_CHAT_BACKENDS": "chat's backends come from SUTAZAI_MODEL_URL / SUTAZAI_EMBEDDINGS_URL",
}


def compose_environments(compose: dict[str, Any]) -> dict[str, set[str]]:
    return {name: set(compose["services"][name].get("environment") or {}) for name in COMPOSE_SERVICES}


def kubernetes_names(objects: list[dict[str, Any]], secret: dict[str, Any]) -> set[str]:
    names = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("sutazai-config"):
            names |= set(obj["data"])
        if obj["kind"] == "Deployment":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in container.get("env", [])
                          if obj["metadata"]["labels"].get("app.kubernetes.io/part-of") == "sutazai"
                          and obj["metadata"]["labels"].get("app.kubernetes.io/component") in ("service", "worker")}
    return names


def compare(
    settings: list[Setting], surface: set[str], allowed_unset: frozenset[str] = frozenset()
) -> tuple[list[Setting], set[str]]:
    """(settings no name of which the surface holds, surface names no setting reads)."""
    known = {n for s in settings for n in s.names}
    missing = [s for s in settings if not set(s.names) & surface and s.name not in allowed_unset]
    unknown = surface - known - set(PENDING)
    return missing, unknown


def describe(where: str, missing: list[Setting], unknown: set[str]) -> list[str]:
    lines = []
    if missing:
        lines.append(f"{where}: add (read by the services, missing here):")
        lines += [f"    {s.name}    ({s.owner}.{s.field}{', required' if s.required else ''})"
                  for s in sorted(missing, key=lambda s: s.name)]
    if unknown:
        lines.append(f"{where}: remove or rename (no service reads them):")
        lines += [f"    {n}" for n in sorted(unknown)]
    return lines


@pytest.fixture(scope="module")
def settings() -> list[Setting]:
    return service_settings()


def test_the_settings_classes_of_every_service_are_found(settings: list[Setting]) -> None:
    services = {service_of(s) for s in settings}
    assert {"gateway", "agents", "tasks", "mesh", "chat", "memory"} <= services
    assert {"DATABASE_URL", "SUTAZAI_GATEWAY_JWT_SECRET", "SUTAZAI_MODEL_URL"} <= {s.name for s in settings}


def test_compose_environments_match_the_settings(settings: list[Setting]) -> None:
    compose = yaml.safe_load(manifests.COMPOSE.read_text())
    report = []
    for name, environment in compose_environments(compose).items():
        own = [s for s in settings if service_of(s) in (COMPOSE_SERVICES[name], None)]
        missing, unknown = compare(own, environment)
        report += describe(f"deploy/compose.yaml services.{name}.environment", missing, unknown)
    assert not report, "\n" + "\n".join(report)


def test_kubernetes_config_and_secret_match_the_settings(settings: list[Setting], rendered: dict) -> None:
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    surface = kubernetes_names(rendered["base"], secret)
    missing, unknown = compare(settings, surface, frozenset(K8S_UNSET))
    report = describe(f"{CONFIG_ENV.relative_to(manifests.DEPLOY.parent)} (or {SECRET_TEMPLATE.name} for secrets)",
                      missing, unknown)
    assert not report, "\n" + "\n".join(report)


def test_pending_and_unset_names_are_still_needed(settings: list[Setting]) -> None:
    known = {n for s in settings for n in s.names}
    stale = sorted(set(PENDING) & known)
    assert not stale, f"services read these now: remove them from PENDING in {__file__}: {stale}"
    assert set(K8S_UNSET) <= known, f"no service reads {sorted(set(K8S_UNSET) - known)}: remove from K8S_UNSET"


def test_a_missing_and_an_unknown_name_are_reported(settings: list[Setting]) -> None:
    compose = yaml.safe_load(manifests.COMPOSE.read_text())
    environment = compose_environments(compose)["chat"] - {"SUTAZAI_CHAT_CACHE_TTL_S"} | {"SUTAZAI_CHAT_CACHE_TTL"}
    own = [s for s in settings if service_of(s) in ("chat", None)]
    missing, unknown = compare(own, environment)
    assert [s.name for s in missing] == ["SUTAZAI_CHAT_CACHE_TTL_S"] and unknown == {"SUTAZAI_CHAT_CACHE_TTL"}
    text = "\n".join(describe("compose chat", missing, unknown))
    assert "add (read by the services, missing here):\n    SUTAZAI_CHAT_CACHE_TTL_S    (sutazai_chat.config" in text
    assert "remove or rename (no service reads them):\n    SUTAZAI_CHAT_CACHE_TTL" in text


def test_names_per_service_come_from_the_classes_not_a_list(settings: list[Setting]) -> None:
    by_service: dict[str | None, set[str]] = defaultdict(set)
    for s in settings:
        by_service[service_of(s)].add(s.name)
    # aliases resolve as pydantic-settings resolves them: unprefixed infrastructure URLs, prefixed the rest
    assert "DATABASE_URL" in by_service["tasks"] and "SUTAZAI_TASKS_DATABASE_URL" not in by_service["tasks"]
    assert "SUTAZAI_MODEL_URL" in by_service["chat"] and "SUTAZAI_CHAT_MODEL_URL" not in by_service["chat"]


def test_every_name_in_env_example_is_a_setting_or_a_compose_variable(settings: list[Setting]) -> None:
    example = (manifests.DEPLOY / ".env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.M))
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", manifests.COMPOSE.read_text()))
    known = {n for s in settings for n in s.names} | set(PENDING)
    assert sorted(named - known - interpolated) == [], "deploy/.env.example names what nothing reads"
    compose = yaml.safe_load(manifests.COMPOSE.read_text())
    passed = {n for name in COMPOSE_SERVICES for n, v in (compose["services"][name]["environment"] or {}).items()
              if v is None}
    assert sorted(passed - named) == [], "deploy/.env.example should document these (commented, with the default)"
