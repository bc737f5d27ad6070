"""``last_used_at`` of API keys without a write per request: each use is noted in memory (a dictionary
assignment on the hot path) and the notes are written in one statement every ``every_s`` seconds, and once
more when the gateway stops. A process killed between flushes loses at most ``every_s`` of notes; the column
says when a key was last used to within that."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from sutazai_gateway.auth.store import AuthStore

log = logging.getLogger(__name__)


class KeyUsage:
    def __init__(self, store: AuthStore, every_s: float) -> None:
        self._store = store
        self._every_s = every_s
        self._pending: dict[str, float] = {}  # key prefix -> when last used (seconds since the epoch)

    def touch(self, prefix: str, at: float) -> None:
        self._pending[prefix] = at

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            await self._store.record_key_use({p: datetime.fromtimestamp(t, UTC) for p, t in pending.items()})
        except Exception as exc:  # the database is away: keep the notes for the next round
            for prefix, at in pending.items():
                self._pending.setdefault(prefix, at)
            log.warning("could not record API key use; retrying later", extra={"error": str(exc)})

    async def run(self) -> None:
        """Flush every ``every_s`` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self._every_s)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.flush()
