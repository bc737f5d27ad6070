"""Who is limited how: the rules of the gateway's rate limits, without I/O (``ratelimit.py`` counts in Redis).

Every request counts against one bucket, as the original's limiter did (a route's own limit replaced the
default): ``chat_stream`` for streaming chat, ``chat`` for the other model calls, ``default`` for the rest.
Buckets are per user (all of a user's keys and tokens share them) or, for an API key with an override of its
own, per key; a request without a valid credential counts per client address (``anonymous``). Admins are
exempt unless ``rate_limit_admins``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItem, parse

LIMIT_CLASSES = ("default", "chat", "chat_stream")
UNLIMITED = "unlimited"

# POSTs that call a model (the platform's, OpenAI's and Ollama's routes); streaming chat has its own limit.
CHAT_PATHS = frozenset({
    "/api/v1/chat", "/api/v1/generate", "/api/v1/batch", "/api/v1/analyze",
    "/v1/chat/completions", "/v1/embeddings",
    "/api/chat", "/api/generate", "/api/embed", "/api/embeddings",
})
STREAM_PATHS = frozenset({"/api/v1/chat/stream"})


def parse_limit(text: str) -> RateLimitItem | None:
    """``limits``' notation ("60/minute", "10 per second"); None for "unlimited". ValueError when invalid."""
    if text.strip().lower() == UNLIMITED:
        return None
    return parse(text)


def limit_class(method: str, path: str) -> str:
    if method == "POST":
        if path in STREAM_PATHS:
            return "chat_stream"
        if path in CHAT_PATHS:
            return "chat"
    return "default"


@dataclass(frozen=True, slots=True)
class Target:
    """One bucket: the limit, and the identifiers of its key in Redis."""

    item: RateLimitItem
    bucket: str  # the class ("default", "chat", "chat_stream", "anonymous")
    who: str  # "user:<id>", "key:<prefix>" or "addr:<client address>"


class Policy:
    def __init__(
        self, defaults: Mapping[str, str], anonymous: str, *, admins: bool = False,
        overrides: Mapping[str, str | Mapping[str, str]] | None = None,
    ) -> None:
        self._defaults = {name: parse_limit(defaults[name]) for name in LIMIT_CLASSES}
        self._anonymous = parse_limit(anonymous)
        self._admins = admins
        self._overrides: dict[str, dict[str, RateLimitItem | None]] = {}
        for who, value in (overrides or {}).items():
            texts = value if isinstance(value, Mapping) else dict.fromkeys(LIMIT_CLASSES, value)
            self._overrides[who] = {name: parse_limit(text) for name, text in texts.items()}
        self.has_key_overrides = any(who.startswith("key:") for who in self._overrides)

    def for_caller(self, user_id: str, is_admin: bool, key_prefix: str | None, method: str, path: str
                   ) -> Target | None:
        """The bucket of an authenticated request; None when it is not limited."""
        if is_admin and not self._admins:
            return None
        name = limit_class(method, path)
        who = f"user:{user_id}"
        item = self._defaults[name]
        if key_prefix is not None and (by_key := self._overrides.get(f"key:{key_prefix}")) and name in by_key:
            who, item = f"key:{key_prefix}", by_key[name]
        elif (by_user := self._overrides.get(who)) and name in by_user:
            item = by_user[name]
        return Target(item, name, who) if item is not None else None

    def for_address(self, address: str) -> Target | None:
        """The bucket of a request without a valid credential."""
        return Target(self._anonymous, "anonymous", f"addr:{address}") if self._anonymous is not None else None
