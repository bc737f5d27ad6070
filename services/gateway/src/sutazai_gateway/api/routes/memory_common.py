"""What the memory, vectors, documents and graph routes share: the stub, message-to-JSON helpers and the
problem statuses every memory route can answer (``problem_responses`` is the gateway's shared helper)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc

from sutazai_gateway.api.deps import GatewayState
from sutazai_gateway.protojson import to_python

# Deadlines of calls to the memory service: a write embeds through chat (a few hundred ms on CPU), an
# `infer: true` add waits for one generation.
MEMORY_TIMEOUT_S = 30.0
INFER_TIMEOUT_S = 180.0

# Every memory route can answer these: no credential, bad input, the memory (or chat) service down.
COMMON = (401, 422, 503, 504)


def stub(state: GatewayState) -> memory_pb2_grpc.MemoryServiceStub:
    # The upstream's guarded stub: made once, behind the memory service's breaker and default deadline.
    return state.upstreams["memory"].stub(memory_pb2_grpc.MemoryServiceStub)


def when(message: Message, field: str) -> str | None:
    if not message.HasField(field):
        return None
    return str(getattr(message, field).ToDatetime().isoformat() + "Z")


def struct_dict(message: Message, field: str) -> dict[str, Any]:
    if not message.HasField(field):
        return {}
    value: dict[str, Any] = to_python(getattr(message, field))
    return value


def scope_fields(message: memory_pb2.Scope) -> dict[str, str | None]:
    return {"agent_id": message.agent_id or None, "session_id": message.session_id or None,
            "run_id": message.run_id or None}


def memory_dict(m: memory_pb2.Memory) -> dict[str, Any]:
    return {
        "id": m.id, "content": m.content, "metadata": struct_dict(m, "metadata"), **scope_fields(m.scope),
        "user_id": m.user_id, "collection": m.collection or None, "document_id": m.document_id or None,
        "hash": m.content_hash, "created_at": when(m, "created_at"), "updated_at": when(m, "updated_at"),
    }
