"""Identity proofs: short-lived JWTs signed with Ed25519 (``EdDSA``), minted and verified with PyJWT.

Claims: ``sub`` (user id), ``roles``, ``iss`` (the minting principal: ``gateway``, ``tasks-worker``), ``aud``
(``sutazai``), ``iat``, ``exp``; the header's ``kid`` names the signing key (``key_id``), so verifiers may
trust several keys at once (a rotation, a worker key of its own).

Both sides cache, so that the hot path does no cryptography: a minter hands out the same token for an identity
for ``reuse_s`` (half its lifetime by default), a verifier remembers a verified token until it expires (a
bounded LRU). A token forwarded by a service therefore has at least ``ttl_s - reuse_s`` of its life left
when it leaves the minter.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sutazai_runtime.identity.model import USER, Identity

AUDIENCE = "sutazai"
ALGORITHM = "EdDSA"
MAX_TOKEN_CHARS = 4096
_REQUIRED = ["sub", "iss", "aud", "iat", "exp"]


class InvalidProofError(Exception):
    """The identity proof is malformed, expired, signed by an unknown key, or its claims are not ours."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


class ProofMinter:
    """Signs identities as ``issuer``. ``attach`` reuses one token per identity for ``reuse_s``."""

    def __init__(self, private_key: Ed25519PrivateKey, issuer: str, *, ttl_s: float = 60.0,
                 reuse_s: float | None = None, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        if not issuer:
            raise ValueError("a minter needs an issuer name")
        self._key = private_key
        self.issuer = issuer
        self.kid = key_id(private_key.public_key())
        self._ttl_s = ttl_s
        self._reuse_s = ttl_s / 2 if reuse_s is None else min(reuse_s, ttl_s)
        self._max = max_entries
        self._clock = clock
        self._minted: OrderedDict[tuple[str, frozenset[str]], tuple[float, Identity]] = OrderedDict()

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def mint(self, user_id: str, roles: Iterable[str], *, ttl_s: float | None = None) -> str:
        """A new token for ``user_id`` with ``roles``, valid ``ttl_s`` (default: the minter's)."""
        now = int(self._clock())
        claims = {"sub": user_id, "roles": sorted(roles), "iss": self.issuer, "aud": AUDIENCE, "iat": now,
                  "exp": now + int(self._ttl_s if ttl_s is None else ttl_s)}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def attach(self, identity: Identity) -> Identity:
        """``identity`` with a proof minted by this minter, the same one for ``reuse_s``."""
        entry_key = (identity.user_id, identity.roles)
        now = self._clock()
        entry = self._minted.get(entry_key)
        if entry is not None and entry[0] > now:
            return entry[1]
        attached = identity.with_proof(self.mint(identity.user_id, identity.roles), self.issuer)
        self._minted[entry_key] = (now + self._reuse_s, attached)
        self._minted.move_to_end(entry_key)
        while len(self._minted) > self._max:
            self._minted.popitem(last=False)
        return attached

    def metadata(self, identity: Identity) -> tuple[tuple[str, str], ...]:
        """The metadata that carries ``identity`` (with a current proof) on a call."""
        return self.attach(identity).to_metadata()


class ProofVerifier:
    """Verifies tokens against trusted public keys. A verified token is remembered until its ``exp`` (LRU of
    ``max_entries``), so a token used again costs a dictionary lookup. ``max_lifetime_s`` refuses tokens
    minted to live longer than any minter here makes them (a misconfigured minter, not a forger)."""

    def __init__(self, public_keys: Iterable[Ed25519PublicKey], *, leeway_s: float = 5.0,
                 max_lifetime_s: float = 900.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._keys = {key_id(k): k for k in public_keys}
        if not self._keys:
            raise ValueError("a verifier needs at least one trusted public key")
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_lifetime_s
        self._max = max_entries
        self._clock = clock
        self._verified: OrderedDict[str, tuple[float, Identity]] = OrderedDict()

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def __len__(self) -> int:
        return len(self._verified)

    def verify(self, token: str) -> Identity:
        """The identity ``token`` proves, or ``InvalidProofError``."""
        entry = self._verified.get(token)
        if entry is not None:
            if entry[0] > self._clock():
                self._verified.move_to_end(token)
                return entry[1]
            del self._verified[token]
        identity, expires_at = self._check(token)
        self._verified[token] = (expires_at, identity)
        while len(self._verified) > self._max:
            self._verified.popitem(last=False)
        return identity

    def _check(self, token: str) -> tuple[Identity, float]:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidProofError("the identity proof is empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidProofError(f"malformed identity proof: {exc}") from exc
        key = self._keys.get(str(header.get("kid", "")))
        if key is None:
            raise InvalidProofError("the identity proof is signed by a key this service does not trust")
        try:
            # Times are checked below against our clock (PyJWT reads the system's); everything else here.
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False})
        except jwt.PyJWTError as exc:
            raise InvalidProofError(f"invalid identity proof: {exc}") from exc
        try:
            expires_at, issued_at = float(claims["exp"]), float(claims["iat"])
        except (TypeError, ValueError) as exc:
            raise InvalidProofError("the identity proof's exp or iat is not a number") from exc
        now = self._clock()
        if expires_at <= now - self._leeway_s:
            raise InvalidProofError("the identity proof has expired")
        if issued_at > now + self._leeway_s:
            raise InvalidProofError("the identity proof is issued in the future")
        if expires_at - issued_at > self._max_lifetime_s:
            raise InvalidProofError("the identity proof lives longer than any minter makes them")
        sub, iss, roles = claims.get("sub"), claims.get("iss"), claims.get("roles", [USER])
        if not isinstance(sub, str) or not sub or not isinstance(iss, str) or not iss:
            raise InvalidProofError("the identity proof names no subject or issuer")
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise InvalidProofError("the identity proof's roles are not a list of names")
        identity = Identity(sub, frozenset(roles) or frozenset({USER}), issuer=iss, proof=token)
        return identity, expires_at
