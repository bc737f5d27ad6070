"""Where a process finds its identity keys (prefix ``SUTAZAI_IDENTITY_``, shared by every service).

Every service needs ``public_keys_file`` (it verifies callers); the gateway and the task workers also need
``private_key_file`` (they mint). The launcher writes both under ``.sutazai/identity/``; Kubernetes mounts the
public keys from a ConfigMap and the private key from a Secret into the gateway and the workers only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sutazai_runtime.identity.keys import KeyFileError, load_private_key, load_public_keys
from sutazai_runtime.identity.proof import ProofMinter, ProofVerifier, key_id


class IdentityConfigError(RuntimeError):
    """The identity keys are not configured, or do not fit together: the process cannot start."""


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_IDENTITY_", extra="ignore", populate_by_name=True,
                                      frozen=True)

    # PEM file of the trusted Ed25519 public keys (one or more blocks). Required by every service.
    public_keys_file: Path | None = None
    # PEM file of this process's Ed25519 private key: the gateway and the task workers only.
    private_key_file: Path | None = None
    # Lifetime of a minted proof; a minter reuses one for half of it.
    token_ttl_s: float = Field(60.0, ge=10, le=600)

    @field_validator("public_keys_file", "private_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    def verifier(self) -> ProofVerifier:
        if self.public_keys_file is None:
            raise IdentityConfigError(
                "SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE is not set: every service needs the platform's public key(s) "
                "to verify who calls it (`make run` writes them to .sutazai/identity/; see deploy/README.md)")
        try:
            return ProofVerifier(load_public_keys(self.public_keys_file),
                                 max_lifetime_s=max(900.0, self.token_ttl_s * 2))
        except KeyFileError as exc:
            raise IdentityConfigError(f"SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE: {exc}") from exc

    def minter(self, issuer: str) -> ProofMinter:
        """The minter of a process that acts for users (``gateway``, ``tasks-worker``). When the public keys are
        configured too, its key must be among them: otherwise every service would refuse what it signs."""
        if self.private_key_file is None:
            raise IdentityConfigError(
                f"SUTAZAI_IDENTITY_PRIVATE_KEY_FILE is not set: the {issuer} signs the identities it passes on "
                "(`make run` writes the key to .sutazai/identity/; see deploy/README.md)")
        try:
            minter = ProofMinter(load_private_key(self.private_key_file), issuer, ttl_s=self.token_ttl_s)
            trusted = {key_id(k) for k in load_public_keys(self.public_keys_file)} if self.public_keys_file else None
        except KeyFileError as exc:
            raise IdentityConfigError(f"identity keys: {exc}") from exc
        if trusted is not None and minter.kid not in trusted:
            raise IdentityConfigError(
                f"the private key in {self.private_key_file} (key id {minter.kid}) is not among the trusted public "
                f"keys in {self.public_keys_file}: every service would refuse the identities this {issuer} signs")
        return minter
