"""The local stack's secrets: generated on first run, kept in ``<home>/secrets.json`` (mode 0600), and the
identity key pair in ``<home>/identity/`` (the private key mode 0600).

They give ``make run`` a working admin without anyone typing a password, and never appear in logs. The key pair
signs the identity the gateway and the task workers pass to services; every service gets the public key, only
the gateway and the workers the private one.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from sutazai_runtime.identity.keys import ensure_key_pair

PUBLIC_KEYS_VAR = "SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE"
PRIVATE_KEY_VAR = "SUTAZAI_IDENTITY_PRIVATE_KEY_FILE"


def _api_key() -> str:
    # The gateway's API key format (sutazai_gateway.auth.api_keys): sk-sutazai-<8 hex>-<43 url-safe>.
    return f"sk-sutazai-{secrets.token_hex(4)}-{secrets.token_urlsafe(32)}"


def load_or_create(home: Path) -> dict[str, str]:
    path = home / "secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        "jwt_secret": secrets.token_urlsafe(48),
        "admin_username": "admin",
        "admin_password": secrets.token_urlsafe(18),
        "admin_api_key": _api_key(),
    }
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out, indent=2)
    return values


def gateway_env(values: dict[str, str], environ: dict[str, str]) -> dict[str, str]:
    """Gateway settings from the secrets file, unless the operator configured them."""
    wanted = {
        "SUTAZAI_GATEWAY_JWT_SECRET": values["jwt_secret"],
        "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_USERNAME": values["admin_username"],
        "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_PASSWORD": values["admin_password"],
        "SUTAZAI_GATEWAY_BOOTSTRAP_API_KEY": values["admin_api_key"],
    }
    return {k: v for k, v in wanted.items() if k not in environ}


def identity_keys(home: Path) -> tuple[Path, Path]:
    """(private, public) key files of this data folder, made on first use."""
    return ensure_key_pair(home / "identity")


def identity_env(home: Path, environ: dict[str, str], *, mints: bool) -> dict[str, str]:
    """``environ`` with the identity key settings: the public keys for every process, the private key only for
    one that mints (the gateway, the task workers). Configured paths win over the data folder's pair."""
    private, public = identity_keys(home)
    env = dict(environ)
    if not env.get(PUBLIC_KEYS_VAR):
        env[PUBLIC_KEYS_VAR] = str(public)
    configured = env.pop(PRIVATE_KEY_VAR, None)
    if mints:
        env[PRIVATE_KEY_VAR] = configured or str(private)
    return env
