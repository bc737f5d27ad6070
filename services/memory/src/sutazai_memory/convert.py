"""Domain records ⇄ ``sutazai.memory.v1`` messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sutazai.memory.v1 import memory_pb2
from sutazai_runtime.timestamps import to_datetime, to_timestamp

from sutazai_memory.documents import DocumentRecord
from sutazai_memory.errors import InvalidInput
from sutazai_memory.graph.base import Entity, Relation
from sutazai_memory.model import Change, MemoryRecord, Scope

MAX_METADATA_BYTES = 16_384


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def from_json(raw: bytes, what: str = "metadata", *, limit: int = MAX_METADATA_BYTES) -> dict[str, Any]:
    """User data as the client sent it: one JSON object in UTF-8 (empty: ``{}``), or ``InvalidInput``.

    Python's ``json`` keeps integers of any size and ``1.0`` apart from ``1``; NaN/Infinity (not JSON) and
    lone surrogates (``"\\ud800"``: not storable as UTF-8 text) are refused here, before any store."""
    if len(raw) > limit:
        raise InvalidInput(f"{what}: at most {limit} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw.decode(), parse_constant=_no_constant)
        canonical_text(value)
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what}: not a valid JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what}: must be a JSON object, not {type(value).__name__}")
    if _has_nul(value):
        raise InvalidInput(f"{what}: must not contain U+0000 (NUL)")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def canonical_text(value: Any) -> str:
    """JSON text of a value, which must encode as UTF-8 (raises UnicodeEncodeError on a lone surrogate)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text.encode()
    return text


def to_json(value: dict[str, Any] | None) -> bytes:
    if not value:  # most memories have no metadata: no encoder run for "{}"
        return b"" if value is None else b"{}"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def from_ts(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return to_datetime(getattr(message, field)).replace(tzinfo=UTC)


def scope(message: memory_pb2.Scope) -> Scope:
    return Scope(message.agent_id.strip(), message.session_id.strip(), message.run_id.strip())


def scope_message(value: Scope) -> memory_pb2.Scope:
    return memory_pb2.Scope(agent_id=value.agent_id, session_id=value.session_id, run_id=value.run_id)


def memory(record: MemoryRecord) -> memory_pb2.Memory:
    return memory_pb2.Memory(
        id=record.id, content=record.content, metadata_json=to_json(record.metadata), scope=scope_message(record.scope),
        user_id=record.user_id, collection=record.collection, document_id=record.document_id,
        content_hash=record.content_hash, created_at=to_timestamp(record.created_at),
        updated_at=to_timestamp(record.updated_at),
    )


def change(value: Change) -> memory_pb2.MemoryChange:
    return memory_pb2.MemoryChange(
        memory_id=value.memory_id, event=value.event, old_content=value.old_content or "",
        new_content=value.new_content or "", old_metadata_json=to_json(value.old_metadata),
        new_metadata_json=to_json(value.new_metadata), at=to_timestamp(value.at),
    )


def document(record: DocumentRecord) -> memory_pb2.Document:
    return memory_pb2.Document(
        id=record.id, filename=record.filename, content_type=record.content_type, size=record.size,
        tags=record.tags, description=record.description, chunks=record.chunks,
        created_at=to_timestamp(record.created_at),
        status=record.status, error=record.error, progress=record.progress, sha256=record.sha256,
        updated_at=to_timestamp(record.updated_at), chunks_total=record.chunks_total,
    )


def entity(value: Entity) -> memory_pb2.Entity:
    return memory_pb2.Entity(
        id=value.id, name=value.name, type=value.type, properties_json=to_json(value.properties),
        scope=scope_message(value.scope), created_at=to_timestamp(value.created_at),
        updated_at=to_timestamp(value.updated_at),
    )


def relation(value: Relation) -> memory_pb2.Relation:
    return memory_pb2.Relation(
        id=value.id, source_id=value.source_id, target_id=value.target_id, type=value.type,
        properties_json=to_json(value.properties), valid_from=to_timestamp(value.valid_from),
        valid_to=to_timestamp(value.valid_to),
        created_at=to_timestamp(value.created_at),
    )
