"""For tests: identities with proofs signed by the keys the environment configures (``SUTAZAI_IDENTITY_*``;
the suite's root ``conftest.py`` makes a key pair per session). Not used by any service."""

from __future__ import annotations

import functools

from sutazai_runtime.identity.model import ADMIN, USER, Identity
from sutazai_runtime.identity.proof import ProofMinter
from sutazai_runtime.identity.settings import IdentitySettings


@functools.cache
def minter(issuer: str = "gateway") -> ProofMinter:
    return IdentitySettings().minter(issuer)


def identity(user_id: str, *, admin: bool = False, issuer: str = "gateway") -> Identity:
    """``user_id`` (with the admin role when ``admin``) and a current proof."""
    return minter(issuer).attach(Identity(user_id, frozenset({ADMIN, USER} if admin else {USER})))


def metadata(user_id: str, *, admin: bool = False, issuer: str = "gateway") -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``user_id``'s identity with a current proof."""
    return identity(user_id, admin=admin, issuer=issuer).to_metadata()
