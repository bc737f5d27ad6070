"""The memory context's records, free of I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCOPE_FIELDS = ("agent_id", "session_id", "run_id")


@dataclass(frozen=True, slots=True)
class Scope:
    agent_id: str = ""
    session_id: str = ""
    run_id: str = ""

    def conditions(self) -> dict[str, str]:
        """The set fields, for narrowing a search or a list."""
        return {k: v for k in SCOPE_FIELDS if (v := getattr(self, k))}


@dataclass(slots=True)
class MemoryRecord:
    id: str
    user_id: str
    content: str
    metadata: dict[str, Any]
    scope: Scope = field(default_factory=Scope)
    collection: str = ""
    document_id: str = ""
    content_hash: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def payload(self) -> dict[str, Any]:
        """What Qdrant keeps beside the vectors: enough to answer a search without Postgres."""
        return {
            "kind": "memory", "user_id": self.user_id, "agent_id": self.scope.agent_id,
            "session_id": self.scope.session_id, "run_id": self.scope.run_id, "collection": self.collection,
            "document_id": self.document_id, "content": self.content, "metadata": self.metadata,
            # the metadata exactly (an engine keeps numbers as 64-bit ints or doubles); "metadata" is for filters
            "metadata_json": json.dumps(self.metadata, ensure_ascii=False, separators=(",", ":")),
            "content_hash": self.content_hash,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_payload(cls, point_id: str, payload: dict[str, Any]) -> MemoryRecord:
        def when(key: str) -> datetime | None:
            value = payload.get(key)
            return datetime.fromisoformat(value) if value else None

        return cls(
            id=point_id, user_id=payload.get("user_id", ""), content=payload.get("content", ""),
            metadata=_metadata(payload),
            scope=Scope(payload.get("agent_id", ""), payload.get("session_id", ""), payload.get("run_id", "")),
            collection=payload.get("collection", ""), document_id=payload.get("document_id", ""),
            content_hash=payload.get("content_hash", ""), created_at=when("created_at"),
            updated_at=when("updated_at"),
        )


def _metadata(payload: dict[str, Any]) -> dict[str, Any]:
    raw = payload.get("metadata_json")
    if raw == "{}":  # most memories have none: no decoder run per search result
        return {}
    return json.loads(raw) if raw else payload.get("metadata") or {}


@dataclass(slots=True)
class NewMemory:
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    scope: Scope = field(default_factory=Scope)
    collection: str = ""
    document_id: str = ""


@dataclass(slots=True)
class Change:
    memory_id: str
    event: str
    old_content: str | None
    new_content: str | None
    old_metadata: dict[str, Any] | None
    new_metadata: dict[str, Any] | None
    at: datetime


@dataclass(slots=True)
class GraphOutcome:
    entities: int = 0
    relations: int = 0
    skipped: str = ""  # why nothing went into the graph


@dataclass(slots=True)
class AddOutcome:
    item: int
    event: str  # created | duplicate | skipped
    memory: MemoryRecord | None = None
    reason: str = ""
    graph: GraphOutcome | None = None


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()
