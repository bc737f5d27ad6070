"""The caller's identity between services, and the proof that makes it believable.

A user's identity (user id, roles) travels from service to service as a short-lived token signed with
Ed25519 (``proof``), in the gRPC metadata key ``x-sutazai-identity``. Only minting principals hold a private
key: the gateway (for the users it authenticated) and the task workers (for a task's owner). Every service
holds only the public keys and trusts an identity only with a valid proof: any pod in a cluster can reach a
service's port, so bare metadata proves nothing. ``serve`` (``sutazai_runtime.grpc_server``) verifies the
proof of every call before the servicer runs (``interceptor``); a servicer asks for the caller with
``require_identity`` / ``require_admin``. A service calling another on a user's behalf forwards the proof it
received (``identity.to_metadata()``).

Modules: ``model`` (``Identity``), ``proof`` (minting and verifying tokens, with their caches), ``keys``
(Ed25519 key files), ``settings`` (``SUTAZAI_IDENTITY_*``), ``interceptor`` (the server side).
"""

from sutazai_runtime.identity.interceptor import (
    IdentityInterceptor,
    IdentityRefused,
    caller_of,
    current_caller,
    require_admin,
    require_identity,
    set_caller,
)
from sutazai_runtime.identity.model import (
    ADMIN,
    IDENTITY_KEY,
    LEGACY_KEYS,
    ROLES_KEY,
    USER,
    USER_ID_KEY,
    Identity,
)
from sutazai_runtime.identity.proof import InvalidProofError, ProofMinter, ProofVerifier, key_id
from sutazai_runtime.identity.settings import IdentityConfigError, IdentitySettings

__all__ = [
    "ADMIN", "IDENTITY_KEY", "LEGACY_KEYS", "ROLES_KEY", "USER", "USER_ID_KEY", "Identity", "IdentityConfigError",
    "IdentityInterceptor", "IdentityRefused", "IdentitySettings", "InvalidProofError", "ProofMinter",
    "ProofVerifier", "caller_of", "current_caller", "key_id", "require_admin", "require_identity", "set_caller",
]
