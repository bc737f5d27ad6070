"""``Identity``: who a call is for, and the signed token that proves it (when it arrived with one)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

IDENTITY_KEY = "x-sutazai-identity"
# What services trusted before identities were signed. Nobody sends them any more; a call that does is refused.
USER_ID_KEY = "x-sutazai-user-id"
ROLES_KEY = "x-sutazai-roles"
LEGACY_KEYS = frozenset({USER_ID_KEY, ROLES_KEY})
ADMIN = "admin"
USER = "user"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    roles: frozenset[str] = frozenset({USER})
    # Who vouched for it: the minting principal (``gateway``, ``tasks-worker``); empty before it is minted.
    issuer: str = field(default="", compare=False)
    # The signed token (``proof``) this identity arrived with or was given; forwarded as it is.
    proof: str = field(default="", compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def with_proof(self, proof: str, issuer: str) -> Identity:
        return replace(self, proof=proof, issuer=issuer)

    def to_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata that carries this identity to another service: its proof, or nothing without one."""
        return ((IDENTITY_KEY, self.proof),) if self.proof else ()
