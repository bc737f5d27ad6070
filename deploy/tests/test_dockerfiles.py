"""The Dockerfiles follow the rules (read, not built: there is no Docker engine here): one per service, built
from the repository root with uv, the locked dependencies in a layer before the source, multi-stage, a slim
base, a numeric non-root user, no build tools in the final stage; the worker has no image of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "agents", "tasks", "mesh", "chat", "memory")


def stages(text: str) -> list[list[str]]:
    """The instructions of each stage (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    result: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


@pytest.mark.parametrize("service", SERVICES)
def test_the_dockerfile_follows_the_rules(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    *_, build, final = stages(text)
    assert build[0].startswith("FROM ${PYTHON_IMAGE} AS build") and final[0] == "FROM ${PYTHON_IMAGE}"
    # the locked third-party dependencies first, from the lock file alone, then the source
    deps = next(i for i, line in enumerate(build) if "--no-install-workspace" in line)
    assert f"uv sync --frozen --no-dev --no-install-workspace --package sutazai-{service}" in build[deps]
    assert "source=uv.lock" in build[deps] and "source=pyproject.toml" in build[deps]
    first_source = next(i for i, line in enumerate(build) if line.startswith("COPY") and "services/" in line)
    assert deps < first_source
    assert any(f"uv sync --frozen --no-dev --no-editable --package sutazai-{service}" in line
               for line in build[first_source:])
    # the final stage: the virtualenv only, a numeric non-root user, no uv, no compiler
    assert [line for line in final if line.startswith("COPY --from=")] == ["COPY --from=build /app/.venv /app/.venv"]
    user = [line for line in final if line.startswith("USER ")]
    assert user and re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", user[-1])
    assert not any(re.search(r"\b(uv|gcc|build-essential|apt-get install)\b", line) for line in final
                   if not line.startswith(("ENTRYPOINT", "CMD", "HEALTHCHECK", "ENV", "EXPOSE")))
    assert f'ENTRYPOINT ["python", "-m", "sutazai_{service}"]' in final
    assert any(line.startswith("HEALTHCHECK") for line in final)


def test_the_worker_runs_from_the_tasks_image() -> None:
    text = (ROOT / "services" / "tasks" / "Dockerfile").read_text()
    assert 'CMD ["server"]' in text
    assert not (ROOT / "services" / "tasks-worker").exists()


def test_the_dockerignore_lets_in_only_what_the_images_copy() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "libs/proto", "libs/runtime", "services", "agents"}
    assert {"**/tests/", "**/.venv/", "**/__pycache__/"} <= set(lines)
    for service in SERVICES:
        copied = re.findall(r"^COPY (?!--from)(\S+)", (ROOT / "services" / service / "Dockerfile").read_text(), re.M)
        assert all(any(c == a or c.startswith(a + "/") for a in allowed) for c in copied), (service, copied)
