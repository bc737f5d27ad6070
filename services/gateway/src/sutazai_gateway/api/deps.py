"""Request dependencies: the long-lived objects the lifespan created, and the caller's identity."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import grpc
from fastapi import Depends, HTTPException, Request
from sutazai_runtime.identity import Identity, ProofMinter

from sutazai_gateway.api_cache import ApiCache
from sutazai_gateway.auth.revocations import Revocations
from sutazai_gateway.auth.service import Authenticator, AuthError
from sutazai_gateway.config import Settings
from sutazai_gateway.health_monitor import HealthMonitor
from sutazai_gateway.ratelimit import RedisRateLimiter
from sutazai_gateway.ratelimit_middleware import IDENTIFIED, credential_of
from sutazai_gateway.ratelimit_policy import Policy
from sutazai_gateway.task_submission import TaskSubmitter
from sutazai_gateway.upstreams import Upstreams


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    upstreams: Upstreams
    monitor: HealthMonitor
    auth: Authenticator
    started_monotonic: float
    # Signs the identity passed to services; one proof per identity is reused for half its life.
    minter: ProofMinter
    # Tells every gateway process serving this port to close its breakers (each process keeps its own).
    announce_breaker_reset: Callable[..., Awaitable[None]] | None = None  # (name: str | None = None)
    # Drops a revoked key or a disabled user's credentials on every gateway process and instance.
    revocations: Revocations | None = None
    limiter: RedisRateLimiter | None = None  # None: rate limits off
    limit_policy: Policy | None = None
    api_cache: ApiCache | None = None  # None: the API cache is off
    # Concurrent POST /api/v1/tasks of one user share one CreateTasks call.
    task_submitter: TaskSubmitter = field(init=False)

    def __post_init__(self) -> None:
        self.task_submitter = TaskSubmitter(self.upstreams)


async def get_state(request: Request) -> GatewayState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request.
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def presented_credential(request: Request) -> str | None:
    """``Authorization: Bearer <token or API key>``, else ``X-API-Key: <key>``."""
    return credential_of(request.scope)


async def current_user(request: Request) -> Identity:
    # The state is read here rather than through ``StateDep``: one sub-dependency fewer to solve per request.
    credential = presented_credential(request)
    if credential is None:
        raise HTTPException(401, "this route needs a credential: Authorization: Bearer <token> or X-API-Key",
                            headers=_CHALLENGE)
    state: GatewayState = request.app.state.gateway
    # The rate limit already identified the caller (ratelimit_middleware): its outcome, not a second check.
    seen = request.scope.get("state", {}).get(IDENTIFIED)
    if seen is not None and seen[0] == credential:
        outcome = seen[1]
        if isinstance(outcome, Identity):
            return state.minter.attach(outcome)
        raise HTTPException(401, str(outcome), headers=_CHALLENGE)
    try:
        return await caller(state, credential)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers=_CHALLENGE) from exc


async def caller(state: GatewayState, credential: str) -> Identity:
    """The identity behind ``credential``, with the signed proof that carries it to the services."""
    return state.minter.attach(await state.auth.identify(credential))


CurrentUser = Annotated[Identity, Depends(current_user)]


async def admin_user(user: CurrentUser) -> Identity:
    if not user.is_admin:
        raise HTTPException(403, "this route needs the admin role")
    return user


AdminUser = Annotated[Identity, Depends(admin_user)]


def call_metadata(identity: Identity) -> grpc.aio.Metadata:
    """The caller's identity (its signed proof) as gRPC metadata, built once per proof: a ready ``Metadata``
    spares grpc.aio its conversion of a tuple on every call. grpc.aio only reads it, so calls may share it."""
    return _metadata_of(identity.proof)


@functools.lru_cache(maxsize=4096)
def _metadata_of(proof: str) -> grpc.aio.Metadata:
    return grpc.aio.Metadata(*Identity("", proof=proof).to_metadata())
