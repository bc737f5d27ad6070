"""The caller's identity, carried from the gateway to every service in gRPC metadata.

The gateway authenticates; services trust these headers because they are reachable only from
inside the platform's network. Services scope data by ``Identity.user_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc

USER_ID_KEY = "x-sutazai-user-id"
ROLES_KEY = "x-sutazai-roles"
ADMIN = "admin"
USER = "user"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    roles: frozenset[str] = frozenset({USER})

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def to_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((USER_ID_KEY, self.user_id), (ROLES_KEY, ",".join(sorted(self.roles))))

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> Identity | None:
        """The identity in ``metadata``, or None when the call carries none."""
        values = {k: v for k, v in (metadata or ()) if k in (USER_ID_KEY, ROLES_KEY)}
        user_id = values.get(USER_ID_KEY)
        if not user_id or not isinstance(user_id, str):
            return None
        raw_roles = values.get(ROLES_KEY) or ""
        roles = frozenset(r.strip() for r in str(raw_roles).split(",") if r.strip())
        return cls(user_id=user_id, roles=roles or frozenset({USER}))


def merge_metadata(
    identity: Identity | None, metadata: Sequence[tuple[str, str]] | None
) -> tuple[tuple[str, str], ...]:
    """``metadata`` with the identity's keys replaced by ``identity``'s."""
    kept = tuple((k, v) for k, v in (metadata or ()) if k not in (USER_ID_KEY, ROLES_KEY))
    return kept + (identity.to_metadata() if identity else ())


async def require_identity(context: grpc.aio.ServicerContext) -> Identity:
    """The caller's identity, or abort the call with UNAUTHENTICATED."""
    identity = Identity.from_metadata(context.invocation_metadata())
    if identity is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the call carries no caller identity")
    assert identity is not None  # abort raises; this narrows the type
    return identity


async def require_admin(context: grpc.aio.ServicerContext) -> Identity:
    identity = await require_identity(context)
    if not identity.is_admin:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this call needs the admin role")
    return identity
