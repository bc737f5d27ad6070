"""RFC 9457 problem responses for every error the gateway returns, and their OpenAPI declaration.

Every route declares the problems it can answer with ``responses=problem_responses(...)``, so the
contract (``/openapi.json``) says what the route does and schemathesis can hold it to that::

    @router.get("/{task_id}", responses=problem_responses(400, 401, 404, 422, 503))

Which codes to list: 401 when the route needs a credential (``CurrentUser``), 401 and 403 for
``AdminUser``; 422 when it takes any parameter or body (request validation); 413 when it takes a
body; 503 and 504 when it calls an upstream service (unavailable or its breaker open, deadline); and
what its upstream's domain errors map to (``grpc_errors``: 400, 404, 409, 429).
What follows from a route's signature (401, 403, 413, 422) ``complete_problem_declarations`` adds to
every route when the app is built; ``services/gateway/tests/test_openapi_contract.py`` checks the
result; the system test ``tests/system/test_contract.py`` checks the rest against a running stack.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, routing
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from sutazai_runtime.logging import REQUEST_ID

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemIssue(BaseModel):
    """One invalid field of a 422 problem."""

    location: list[str | int] = Field(description="where the value is: 'body', 'query', 'path', then the field names")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem (``application/problem+json``); other members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="a URI naming the kind of problem")
    title: str = Field(description="the HTTP status phrase")
    status: int = Field(ge=400, le=599)
    detail: str | None = Field(None, description="what went wrong, for a person")
    instance: str | None = Field(None, description="the request path")
    errors: list[ProblemIssue] | None = Field(None, description="422 only: every invalid field")


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined, so it stands alone in any operation."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return dict(resolve(schema))


_PROBLEM_SCHEMA = _inline(Problem.model_json_schema())


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route for the problem statuses it can answer (see the module doc)."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
        }
        for status in sorted(set(statuses))
    }


def problem(
    status: int, detail: str | None = None, *, title: str | None = None, instance: str | None = None,
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem(exc.status_code, detail, instance=request.url.path, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem(422, "the request is not valid", instance=request.url.path, errors=errors)


async def _not_unicode(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
    """Text with a lone surrogate (JSON allows ``"\\ud800"``) cannot become UTF-8 for a gRPC message or a
    store: the request's fault, wherever a route meets it."""
    return problem(422, "text must be valid Unicode (a lone surrogate cannot be encoded as UTF-8)",
                   instance=request.url.path,
                   errors=[{"location": ["body"], "message": "lone surrogate", "type": "unicode"}])


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    request_id = REQUEST_ID.get()  # answered outside the request-id middleware: the header is added here
    return problem(500, "an internal error occurred; it has been logged", instance=request.url.path,
                   headers={"X-Request-ID": request_id} if request_id else None)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled)


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _dependants(dependency)


def complete_problem_declarations(app: FastAPI, *, credential: Callable[..., Any], admin: Callable[..., Any],
                                  rate_limited: bool = False, unlimited_paths: Collection[str] = ()) -> None:
    """Declare in ``/openapi.json``, on every route, the problems the platform itself answers, as Problems.

    Routes list their domain problems (404, 409, 503, ...) with ``problem_responses``; what follows from
    a route's signature is added here, so a new route cannot forget it: 401 when it depends on
    ``credential``, 403 on ``admin``, 422 when it takes any parameter or body, 413 with a body, and 429 on
    every route the rate limit counts (all but ``unlimited_paths``) when ``rate_limited``. An error
    a route declared some other way (a bare ``{"description": ...}``) gets the Problem schema and keeps
    its description. Done on the generated document (once), since included routers' routes are copies."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        for context in routing.iter_route_contexts(app.routes):
            if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
                continue
            dependants = list(_dependants(context.dependant))
            calls = {dependant.call for dependant in dependants}
            has_body = context.body_field is not None
            needed = {401} if credential in calls else set()
            if admin in calls:
                needed |= {401, 403}
            if has_body or any(d.path_params or d.query_params or d.header_params or d.cookie_params
                               for d in dependants):
                needed.add(422)
            if has_body:
                needed.add(413)
            if rate_limited and context.path_format not in unlimited_paths:
                needed.add(429)
            for method in context.methods or ():
                operation = schema["paths"].get(context.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                declared = {int(status) for status in responses if status.isdigit() and int(status) >= 400}
                for status in needed | declared:
                    entry = problem_responses(status)[status]
                    entry["description"] = responses.get(str(status), {}).get("description") or entry["description"]
                    responses[str(status)] = entry
        # FastAPI's own 422 schemas, now referenced by no route (every 422 is a Problem).
        components = schema.get("components", {}).get("schemas", {})
        text = json.dumps(schema["paths"])
        for name in ("HTTPValidationError", "ValidationError"):
            if f"#/components/schemas/{name}" not in text:
                components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
