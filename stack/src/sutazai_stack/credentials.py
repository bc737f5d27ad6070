"""The local stack's secrets: generated on first run, kept in ``<home>/secrets.json`` (mode 0600).

They give ``make run`` a working admin without anyone typing a password, and never appear in logs.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


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
