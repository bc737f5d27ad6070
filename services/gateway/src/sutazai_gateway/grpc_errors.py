"""gRPC failures of an upstream as HTTP problems: the one place that maps status codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from fastapi import HTTPException
from sutazai_runtime.resilience.upstream import UpstreamUnavailable

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_exception(service: str, exc: grpc.aio.AioRpcError) -> HTTPException:
    status = _HTTP_STATUS.get(exc.code(), 502)
    headers = {"Retry-After": _retry_after(exc)} if status in (429, 503) else None
    if isinstance(exc, UpstreamUnavailable):  # refused here: the breaker is open, the cap reached, no instance
        detail = f"the {exc.upstream} service is unavailable: {exc.details()}"
    elif status >= 500 and status != 501:
        detail = f"the {service} service is unavailable ({exc.code().name})"
    else:
        detail = exc.details() or exc.code().name
    return HTTPException(status, detail, headers=headers)


def _retry_after(exc: grpc.aio.AioRpcError) -> str:
    """The upstream's (or its circuit breaker's) advice, else one second."""
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after" and str(value).isdigit():
            return str(value)
    return "1"


@contextmanager
def upstream_errors(service: str) -> Iterator[None]:
    """``with upstream_errors("tasks"): await stub.X(...)`` turns a gRPC error into a problem response."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise http_exception(service, exc) from exc
