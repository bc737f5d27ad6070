"""Every circuit breaker of the platform as one listing: the gateway's own (one per upstream service) and each
service instance's (chat's model backends, the upstreams a service calls), read through each instance's
Diagnostics service with the health checks' short deadline. A remote breaker is named
``<instance id>/<its name>`` (``chat-1/chat-backend:local``); an instance that does not answer is listed
under ``unreachable`` instead of holding the answer up."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import grpc
from sutazai.common.v1 import common_pb2, common_pb2_grpc

from sutazai_gateway.upstreams import Upstreams


@dataclass
class Listing:
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # instance id -> why


def _instances(upstreams: Upstreams) -> list[tuple[str, str, common_pb2_grpc.DiagnosticsStub]]:
    """(service, instance id, Diagnostics stub) of every instance the gateway knows."""
    return [(u.name, instance_id, stub) for u in upstreams
            for instance_id, stub in u.plain_stubs(common_pb2_grpc.DiagnosticsStub)]


async def _bounded(call: Any, timeout_s: float) -> Any:
    async with asyncio.timeout(timeout_s + 0.25):  # the gRPC deadline normally ends it first
        return await call


async def list_all(upstreams: Upstreams, metadata: Any, timeout_s: float) -> Listing:
    listing = Listing()
    for u in upstreams:
        listing.breakers[u.name] = {**u.snapshot(), "owner": "gateway", "kind": "upstream"}
    found = _instances(upstreams)

    async def read(stub: common_pb2_grpc.DiagnosticsStub) -> common_pb2.GetBreakersResponse:
        return await _bounded(stub.GetBreakers(common_pb2.GetBreakersRequest(), metadata=metadata,
                                               timeout=timeout_s), timeout_s)

    replies = await asyncio.gather(*(read(stub) for _, _, stub in found), return_exceptions=True)
    for (service, instance_id, _), reply in zip(found, replies, strict=True):
        if isinstance(reply, BaseException):
            listing.unreachable[instance_id] = _why(reply)
            continue
        for breaker in reply.breakers:
            snapshot = json.loads(breaker.snapshot_json) if breaker.snapshot_json else {}
            listing.breakers[f"{instance_id}/{breaker.name}"] = {
                **snapshot, "name": f"{instance_id}/{breaker.name}", "owner": instance_id, "service": service,
                "kind": breaker.kind,
            }
    return listing


async def reset_remote(upstreams: Upstreams, metadata: Any, timeout_s: float, name: str | None = None
                       ) -> tuple[list[str], dict[str, str]]:
    """Reset every instance's breakers, or the one named ``<instance id>/<name>``. Returns (what was reset,
    instance id -> why it could not be asked). KeyError: no instance or no breaker of that name."""
    found = _instances(upstreams)
    wanted = ""
    if name is not None:
        instance_id, _, wanted = name.partition("/")
        found = [f for f in found if f[1] == instance_id]
        if not found or not wanted:
            raise KeyError(name)

    async def reset(stub: common_pb2_grpc.DiagnosticsStub) -> common_pb2.ResetBreakersResponse:
        return await _bounded(stub.ResetBreakers(common_pb2.ResetBreakersRequest(name=wanted), metadata=metadata,
                                                 timeout=timeout_s), timeout_s)

    replies = await asyncio.gather(*(reset(stub) for _, _, stub in found), return_exceptions=True)
    done: list[str] = []
    failed: dict[str, str] = {}
    for (_, instance_id, _), reply in zip(found, replies, strict=True):
        if isinstance(reply, grpc.aio.AioRpcError) and reply.code() == grpc.StatusCode.NOT_FOUND:
            raise KeyError(name)
        if isinstance(reply, BaseException):
            failed[instance_id] = _why(reply)
            continue
        done += [f"{instance_id}/{n}" for n in reply.reset]
    return done, failed


def _why(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED: no answer in time"
    return f"{type(exc).__name__}: {exc}"
