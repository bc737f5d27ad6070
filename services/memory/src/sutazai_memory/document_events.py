"""Ingestion progress as events: one NATS subject per document, ``sutazai.memory.documents.<id>``, with
``{document_id, owner_id, status, chunks, chunks_total, progress, error}`` after the text is split, after
each embedded batch, and at the end (``ready`` or ``failed``). Core NATS, fire and forget: the status
field in PostgreSQL is the record (``GET /api/v1/documents/{id}``); the events let a watcher follow a large
document without polling. No NATS connection: no events, ingestion goes on (logged once)."""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client

log = logging.getLogger(__name__)

SUBJECT = "sutazai.memory.documents"


def subject(document_id: str) -> str:
    return f"{SUBJECT}.{document_id}"


class DocumentEvents:
    def __init__(self, nc: Client | None) -> None:
        self._nc = nc
        self._warned = False

    async def progress(self, document_id: str, owner_id: str, status: str, chunks: int, chunks_total: int,
                       error: str = "") -> None:
        event: dict[str, Any] = {
            "document_id": document_id, "owner_id": owner_id, "status": status, "chunks": chunks,
            "chunks_total": chunks_total, "progress": round(chunks / chunks_total, 4) if chunks_total else 0.0,
            "error": error or None,
        }
        if self._nc is None or self._nc.is_closed:
            return
        try:
            await self._nc.publish(subject(document_id), json.dumps(event).encode())
        except Exception as exc:  # an event is never worth failing an ingestion
            if not self._warned:
                log.warning("document events not published", extra={"error": str(exc)})
                self._warned = True

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
