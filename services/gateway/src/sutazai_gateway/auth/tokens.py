"""JWT access and refresh tokens (HS256)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

import jwt

TokenType = Literal["access", "refresh"]
_ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    """The token is malformed, expired, of the wrong type, or not signed by us."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    roles: tuple[str, ...]
    type: TokenType
    expires_at: float = field(default=0.0, compare=False)  # the ``exp`` claim, seconds since the epoch


def issue(secret: str, user_id: str, roles: tuple[str, ...], token_type: TokenType, ttl_s: int) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "roles": list(roles), "type": token_type, "iat": now, "exp": now + ttl_s,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify(secret: str, token: str, expected: TokenType) -> TokenClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "type"]})
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    if claims.get("type") != expected:
        raise InvalidTokenError(f"expected a {expected} token")
    roles = claims.get("roles") or ["user"]
    return TokenClaims(str(claims["sub"]), tuple(str(r) for r in roles), expected, float(claims["exp"]))
