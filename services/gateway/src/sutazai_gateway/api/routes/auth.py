"""Login, tokens, API keys and users."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Literal

import grpc
from fastapi import HTTPException, Path, Response
from pydantic import BaseModel, Field
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import Identity

from sutazai_gateway.api.deps import AdminUser, CurrentUser, StateDep
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.auth.service import AccountLockedError, AuthError
from sutazai_gateway.auth.store import AuthStore, User, UsernameTakenError
from sutazai_gateway.problems import problem_responses

log = logging.getLogger(__name__)
TASKS_TIMEOUT_S = 10.0  # one UPDATE of the account's unfinished tasks and a message per running one

router = PrefixedRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class NewApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class CreatedApiKey(BaseModel):
    id: str
    name: str
    key: str = Field(description="shown only in this response; store it now")


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewUser(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=256)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    is_admin: bool = False


class UserInfo(BaseModel):
    id: str
    username: str
    email: str | None
    is_admin: bool
    roles: list[str]
    is_active: bool = True


class UserChange(BaseModel):
    """What an admin may change about a user; fields left out stay as they are."""

    is_active: bool | None = Field(None, description="false disables the account: its tokens and API keys stop "
                                                     "working within seconds on every gateway")
    is_admin: bool | None = None


def _info(user: User) -> UserInfo:
    return UserInfo(id=user.id, username=user.username, email=user.email, is_admin=user.is_admin,
                    roles=list(user.roles), is_active=user.is_active)


def _store(state: StateDep) -> AuthStore:
    return state.auth.store


@router.post("/login", responses=problem_responses(401, 413, 422, 423))
async def login(body: LoginRequest, state: StateDep) -> TokenResponse:
    try:
        pair = await state.auth.login(body.username, body.password)
    except AccountLockedError as exc:
        raise HTTPException(423, str(exc)) from exc
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@router.post("/refresh", responses=problem_responses(401, 413, 422))
async def refresh(body: RefreshRequest, state: StateDep) -> TokenResponse:
    try:
        pair = await state.auth.refresh(body.refresh_token)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@router.get("/me", responses=problem_responses(401))
async def me(user: CurrentUser, state: StateDep) -> UserInfo:
    found = await _store(state).user_by_id(user.user_id)
    if found is None or not found.is_active:
        # A credential verified (and cached) a moment before its account was deleted or disabled: the account
        # is what the credential stood for, so it no longer authenticates anyone.
        raise HTTPException(401, "the account no longer exists or is disabled",
                            headers={"WWW-Authenticate": "Bearer"})
    return _info(found)


@router.post("/api-keys", status_code=201, responses=problem_responses(401, 413, 422))
async def create_api_key(body: NewApiKey, user: CurrentUser, state: StateDep) -> CreatedApiKey:
    key_id, key = await state.auth.create_api_key(user.user_id, body.name)
    return CreatedApiKey(id=key_id, name=body.name, key=key)


@router.get("/api-keys", responses=problem_responses(401))
async def list_api_keys(user: CurrentUser, state: StateDep) -> list[ApiKeyInfo]:
    rows = await _store(state).api_keys_of(user.user_id)
    return [ApiKeyInfo(id=r.id, name=r.name, prefix=r.prefix, created_at=r.created_at,
                       last_used_at=r.last_used_at, revoked_at=r.revoked_at) for r in rows]


@router.delete("/api-keys/{key_id}", status_code=204, responses=problem_responses(401, 404, 422))
async def revoke_api_key(key_id: Annotated[uuid.UUID, Path()], user: CurrentUser, state: StateDep) -> Response:
    store = _store(state)
    rows = {r.id: r for r in await store.api_keys_of(user.user_id)}
    if str(key_id) not in rows or not await store.revoke_api_key(user.user_id, str(key_id)):
        raise HTTPException(404, "no such active API key")
    await _revoked_key(state, rows[str(key_id)].prefix)
    return Response(status_code=204)


async def _revoked_key(state: StateDep, prefix: str) -> None:
    """Every gateway process and instance drops the key at once (this one even when NATS is away)."""
    if state.revocations is not None:
        await state.revocations.api_key(prefix)
    else:
        state.auth.forget_key(prefix)


async def _revoked_user(state: StateDep, user_id: str) -> None:
    if state.revocations is not None:
        await state.revocations.user(user_id)
    else:
        state.auth.forget_user(user_id)


async def _stop_tasks(state: StateDep, admin: Identity, user_id: str, change: Literal["disabled", "deleted"]
                      ) -> None:
    """A disabled or deleted account's unfinished tasks are cancelled, so its work stops with its credentials (a
    worker would otherwise go on acting for it). The account change is made first and stands; when the tasks
    service cannot be reached the answer is a 503 saying so, and repeating the request (idempotent) retries."""
    stub = state.upstreams["tasks"].stub(tasks_pb2_grpc.TaskServiceStub)
    try:
        reply = await stub.CancelOwnerTasks(tasks_pb2.CancelOwnerTasksRequest(owner_id=user_id),
                                            metadata=admin.to_metadata(), timeout=TASKS_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        log.warning("an account's tasks could not be cancelled", extra={"user_id": user_id, "error": exc.code().name})
        done = "disabled" if change == "disabled" else "disabled, not deleted"  # a delete disables first
        raise HTTPException(503, f"the account was {done}, but its unfinished tasks could not be cancelled "
                                 f"({exc.code().name}); repeat the request to cancel them",
                            headers={"Retry-After": "5"}) from exc
    if reply.cancelled:
        log.info("cancelled the unfinished tasks of an account", extra={"user_id": user_id, "change": change,
                                                                       "tasks": reply.cancelled})


@router.post("/users", status_code=201, responses=problem_responses(401, 403, 409, 413, 422))
async def create_user(body: NewUser, _: AdminUser, state: StateDep) -> UserInfo:
    try:
        user = await state.auth.create_user(body.username, body.password, email=body.email, is_admin=body.is_admin)
    except UsernameTakenError as exc:
        raise HTTPException(409, f"the username {body.username!r} is taken") from exc
    return _info(user)


@router.get("/users", responses=problem_responses(401, 403))
async def list_users(_: AdminUser, state: StateDep) -> list[UserInfo]:
    return [_info(u) for u in await _store(state).list_users()]


@router.patch("/users/{user_id}", responses=problem_responses(401, 403, 404, 409, 413, 422, 503))
async def change_user(user_id: Annotated[uuid.UUID, Path()], body: UserChange, admin: AdminUser,
                      state: StateDep) -> UserInfo:
    """Disable or enable an account, grant or take the admin role. A disabled user's tokens and API keys stop
    working on every gateway within seconds (the change is announced) and their unfinished tasks are cancelled;
    re-enabling brings the credentials back (not the cancelled tasks)."""
    if str(user_id) == admin.user_id and (body.is_active is False or body.is_admin is False):
        raise HTTPException(409, "you cannot disable your own account or take your own admin role")
    user = await _store(state).update_user(str(user_id), is_active=body.is_active, is_admin=body.is_admin)
    if user is None:
        raise HTTPException(404, "no such user")
    await _revoked_user(state, user.id)  # cached credentials carry the old state: verify them again
    if body.is_active is False:
        await _stop_tasks(state, admin, user.id, "disabled")
    return _info(user)


@router.delete("/users/{user_id}", status_code=204, responses=problem_responses(401, 403, 404, 409, 422, 503))
async def delete_user(user_id: Annotated[uuid.UUID, Path()], admin: AdminUser, state: StateDep) -> Response:
    """Delete an account and its API keys; its tokens stop working on every gateway within seconds and its
    unfinished tasks are cancelled. Its finished tasks, memories and documents stay in their services, owned by
    the deleted id. In that order: the account is disabled, its tasks cancelled, then it is deleted, so a 503
    (the tasks service unreachable) leaves it disabled, not deleted, and repeating the request finishes it."""
    if str(user_id) == admin.user_id:
        raise HTTPException(409, "you cannot delete your own account")
    store = _store(state)
    if await store.update_user(str(user_id), is_active=False, is_admin=None) is None:
        raise HTTPException(404, "no such user")
    await _revoked_user(state, str(user_id))
    await _stop_tasks(state, admin, str(user_id), "deleted")
    if not await store.delete_user(str(user_id)):
        raise HTTPException(404, "no such user")  # deleted meanwhile by another request
    await _revoked_user(state, str(user_id))
    return Response(status_code=204)
