"""Verified credentials, remembered briefly so that a request does not verify its API key or token again.

A bounded LRU of ``credential -> Identity``. An entry lives ``ttl_s`` at most, and never past the credential's
own expiry (an access token's ``exp``). Per process: with several gateway processes each keeps its own; a
revoked key or a disabled user is dropped from all of them by the announcement in ``revocations.py`` (and
otherwise within ``ttl_s``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from sutazai_runtime.identity import Identity


class CredentialCache:
    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, credential: str) -> Identity | None:
        entry = self._entries.get(credential)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[credential]
            return None
        self._entries.move_to_end(credential)
        return entry[1]

    def put(self, credential: str, identity: Identity, valid_for_s: float | None = None) -> None:
        """Remember ``identity`` for ``ttl_s``, or for ``valid_for_s`` when the credential expires sooner."""
        lifetime = self._ttl_s if valid_for_s is None else min(self._ttl_s, valid_for_s)
        if lifetime <= 0:
            return
        self._entries[credential] = (self._clock() + lifetime, identity)
        self._entries.move_to_end(credential)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget_user(self, user_id: str) -> None:
        """Drop every credential of ``user_id`` (disabled, deleted, roles changed)."""
        for credential in [c for c, (_, identity) in self._entries.items() if identity.user_id == user_id]:
            del self._entries[credential]

    def forget_prefix(self, start: str) -> None:
        """Drop every credential that starts with ``start`` (a revoked API key's id part)."""
        for credential in [c for c in self._entries if c.startswith(start)]:
            del self._entries[credential]
