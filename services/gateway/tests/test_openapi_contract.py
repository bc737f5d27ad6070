"""The OpenAPI document declares the problems each route can answer (``problem_responses``).

Checked here from the routes themselves, so a new route that forgets its declaration fails at once:
a credential means 401 (admin: 403), any parameter or body means 422, a body means 413, and every
declared error is ``application/problem+json``. What the routes really answer is checked against a
running stack by schemathesis in ``tests/system/test_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sutazai_gateway.api.deps import admin_user, current_user
from sutazai_gateway.config import Settings
from sutazai_gateway.main import create_app
from sutazai_gateway.problems import PROBLEM_JSON, Problem


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(jwt_secret="k3Jd8s-Qp2zL0xVw7nB4mR1tY6uH9cF5aE"))  # type: ignore[call-arg]


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _operations(app: FastAPI) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    """Each (route, method, OpenAPI operation); routes of included routers carry their prefix."""
    paths = app.openapi()["paths"]
    contexts = routing.iter_route_contexts(app.routes) if hasattr(routing, "iter_route_contexts") else app.routes
    for route in contexts:
        if isinstance(getattr(route, "original_route", route), APIRoute) and route.include_in_schema:
            for method in route.methods:
                yield route, method, paths[route.path_format][method.lower()]


def test_every_route_is_checked(app: FastAPI) -> None:
    assert sum(1 for _ in _operations(app)) >= 40


def test_a_route_needing_a_credential_declares_401_and_an_admin_route_403(app: FastAPI) -> None:
    missing = []
    for route, method, operation in _operations(app):
        calls = set(_calls(route.dependant))
        needed = ({"401"} if current_user in calls else set()) | ({"403"} if admin_user in calls else set())
        if needed - operation["responses"].keys():
            missing.append(f"{method} {route.path}: {sorted(needed - operation['responses'].keys())}")
    assert missing == []


def test_a_route_with_input_declares_422_and_with_a_body_413(app: FastAPI) -> None:
    missing = []
    for route, method, operation in _operations(app):
        needed = set()
        if operation.get("parameters") or operation.get("requestBody"):
            needed.add("422")
        if operation.get("requestBody"):
            needed.add("413")
        if needed - operation["responses"].keys():
            missing.append(f"{method} {route.path}: {sorted(needed - operation['responses'].keys())}")
    assert missing == []


def test_every_declared_error_is_a_problem_document(app: FastAPI) -> None:
    wrong = []
    for route, method, operation in _operations(app):
        for status, response in operation["responses"].items():
            if status.isdigit() and int(status) >= 400:
                content = response.get("content", {})
                if list(content) != [PROBLEM_JSON] or content[PROBLEM_JSON]["schema"]["title"] != "Problem":
                    wrong.append(f"{method} {route.path} {status}: {list(content)}")
    assert wrong == []
    assert "HTTPValidationError" not in app.openapi().get("components", {}).get("schemas", {})


def test_the_declared_schema_accepts_what_the_handlers_send() -> None:
    sent = {"type": "about:blank", "title": "Unprocessable Entity", "status": 422, "detail": "the request is not valid",
            "instance": "/api/v1/tasks", "errors": [{"location": ["query", "offset"], "message": "too big",
                                                     "type": "less_than_equal"}]}
    assert Problem.model_validate(sent).model_dump(exclude_none=True) == sent
