"""The kustomize tree renders, validates against the Kubernetes schemas and KEDA's CRD schema, follows the
rules every service Deployment must follow, and a broken copy fails the same checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sutazai_tasks.model import PRIORITY_CLASSES
from sutazai_tasks.streams import Names

from deploy.tests import manifests

SERVICES = {"gateway": "http", "agents": "grpc", "tasks": "grpc", "mesh": "grpc", "chat": "grpc", "memory": "grpc"}
WORKLOADS = (*SERVICES, "tasks-worker")


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_every_overlay_renders_and_validates(rendered: dict, overlay: str) -> None:
    objects = rendered[overlay]
    assert objects, overlay
    assert manifests.validate_objects(objects) == []


def test_cached_validation_agrees_with_kubernetes_validate(rendered: dict) -> None:
    deployment = by_kind(rendered["base"], "Deployment")["agents"]
    assert manifests.validate_with_kubernetes_validate(deployment) is None
    deployment = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    assert manifests.validate_with_kubernetes_validate(deployment) is not None
    assert manifests.validate_objects([deployment]) != []


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_each_service_has_its_objects_and_follows_the_rules(rendered: dict, overlay: str) -> None:
    objects = rendered[overlay]
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    accounts, pdbs = by_kind(objects, "ServiceAccount"), by_kind(objects, "PodDisruptionBudget")
    scalers = {**by_kind(objects, "HorizontalPodAutoscaler"), **by_kind(objects, "ScaledObject")}
    for name in WORKLOADS:
        assert name in deployments and name in accounts and name in pdbs and name in scalers, (overlay, name)
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and container["resources"]["limits"]
        tmp = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"}
        assert any(v["name"] in tmp and "emptyDir" in v for v in pod["volumes"]), name
        refs = {next(iter(ref.values()))["name"].rsplit("-", 1)[0] if "configMapRef" in ref
                else ref["secretRef"]["name"] for ref in container["envFrom"]}
        assert refs == {"sutazai-config", "sutazai-secrets"}, refs
    for name, protocol in SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == protocol)
        if protocol == "grpc":  # native gRPC probes on the grpc.health.v1 service
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert container[probe]["grpc"]["port"] == port, (name, probe)
        else:
            assert container["readinessProbe"]["httpGet"]["port"] == port
        service_ports = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        assert service_ports[protocol] == port, (name, service_ports)
    for name in ("tasks", "tasks-worker"):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["image"].rsplit(":", 1)[0].endswith("/tasks") or container["image"].startswith("sutazai/tasks")
    worker = deployments["tasks-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker"]


def test_the_overlays_choose_their_components(rendered: dict) -> None:
    dev, prod = rendered["overlays/dev"], rendered["overlays/prod"]
    assert {"postgres", "redis", "nats", "qdrant", "neo4j", "ollama"} <= set(by_kind(dev, "StatefulSet"))
    assert "ollama-pull" in by_kind(dev, "Job")
    assert not by_kind(prod, "StatefulSet")  # managed servers in production
    for objects in (dev, prod):
        assert "envoy" in by_kind(objects, "Deployment") and "gateway-headless" in by_kind(objects, "Service")
        assert "default-deny-ingress" in by_kind(objects, "NetworkPolicy")
    assert "tasks-worker" in by_kind(prod, "ScaledObject")
    assert "tasks-worker" not in by_kind(prod, "HorizontalPodAutoscaler")
    assert by_kind(prod, "Deployment")["gateway"]["spec"]["replicas"] >= 2
    assert by_kind(dev, "Deployment")["gateway"]["spec"]["replicas"] == 1
    assert all(o["metadata"].get("namespace") in ("sutazai", None) for o in prod)


def test_keda_scales_workers_on_the_consumers_the_tasks_service_creates(rendered: dict) -> None:
    (scaled,) = by_kind(rendered["overlays/prod"], "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "tasks-worker"
    names = Names()  # production has no namespace prefix
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"nats-jetstream"}
    assert {t["metadata"]["stream"] for t in triggers} == {names.tasks_stream}
    assert {t["metadata"]["consumer"] for t in triggers} == {names.consumer(k) for k in PRIORITY_CLASSES}


def test_network_policies_open_only_the_gateway_and_the_edge_to_the_outside(rendered: dict) -> None:
    policies = by_kind(rendered["overlays/prod"], "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    open_to_all = set()
    for policy in policies.values():
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                open_to_all.add(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
            else:  # other namespaces only for the metrics and KEDA's monitoring reads
                for peer in rule["from"]:
                    if "namespaceSelector" in peer:
                        assert {p["port"] for p in rule["ports"]} <= {8222, *range(9101, 9108)}, policy
    assert open_to_all == {"gateway", "envoy"}
    tasks_callers = policies["tasks-callers"]["spec"]["ingress"][0]["from"]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in tasks_callers] == ["gateway"]


# ---- a broken manifest fails the checks


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    if manifests.kubectl() is None:
        pytest.skip(manifests.KUBECTL_MISSING)
    shutil.copytree(manifests.K8S, tmp_path / "k8s")
    return tmp_path / "k8s"


def test_a_wrong_field_type_fails_validation(k8s_copy: Path) -> None:
    path = k8s_copy / "base" / "chat" / "deployment.yaml"
    path.write_text(path.read_text().replace("replicas: 1", 'replicas: "one"'))
    problems = manifests.validate_objects(manifests.render(k8s_copy / "base"))
    assert any("Deployment/chat: spec/replicas" in p for p in problems), problems


def test_an_unknown_field_fails_strict_validation(k8s_copy: Path) -> None:
    path = k8s_copy / "base" / "agents" / "service.yaml"
    path.write_text(path.read_text().replace("  type: ClusterIP", "  type: ClusterIP\n  sessionAffinityy: None"))
    problems = manifests.validate_objects(manifests.render(k8s_copy / "base"))
    assert any("Service/agents" in p and "sessionAffinityy" in p for p in problems), problems


def test_a_broken_scaled_object_fails_the_keda_schema(k8s_copy: Path) -> None:
    path = k8s_copy / "components" / "keda" / "scaledobject.yaml"
    path.write_text(path.read_text().replace("  maxReplicaCount: 20", "  maxReplicaCount: twenty"))
    problems = manifests.validate_objects(manifests.render(k8s_copy / "overlays" / "prod"))
    assert any("ScaledObject/tasks-worker: spec/maxReplicaCount" in p for p in problems), problems


def test_an_unrenderable_overlay_fails(k8s_copy: Path) -> None:
    path = k8s_copy / "overlays" / "prod" / "kustomization.yaml"
    path.write_text(path.read_text().replace("../../components/keda", "../../components/no-such-component"))
    with pytest.raises(RuntimeError, match="no-such-component"):
        manifests.render(k8s_copy / "overlays" / "prod")


def test_a_kind_without_a_schema_is_reported() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    problems = manifests.validate_objects([widget])
    assert problems == ["Widget/w: no schema for example.com/v1 Widget (vendor its CRD schema)"]


def test_without_kubectl_the_render_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifests, "KUBECTL_CANDIDATES", ("/nonexistent/kubectl",))
    assert manifests.kubectl() is None
    with pytest.raises(FileNotFoundError, match="kubectl is not installed"):
        manifests.render(manifests.K8S / "base")
