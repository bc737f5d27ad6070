"""API keys: ``sk-sutazai-<prefix>-<secret>``. Only the prefix (to find the row) and a SHA-256 of the
whole key are stored. A plain hash suffices because the key carries 256 bits of randomness; a slow
hash like argon2 would only add latency to every request."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sk-sutazai-"
_FORMAT = re.compile(r"^sk-sutazai-([a-z0-9]{8})-([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    prefix: str
    key: str


def generate_key() -> str:
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}-{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> ParsedKey | None:
    match = _FORMAT.match(key)
    return ParsedKey(match.group(1), key) if match else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
