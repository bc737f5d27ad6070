"""What the memory, vectors, documents and graph routes share: the stub, message-to-JSON helpers and the
problem statuses every memory route can answer (``problem_responses`` is the gateway's shared helper)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from google.protobuf.message import Message
from pydantic import AfterValidator
from starlette.responses import Response
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc

from sutazai_gateway.api.deps import GatewayState

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


def json_bytes(value: Any) -> bytes:
    """User data to the memory service as JSON text, exactly as the client sent it (stdlib json keeps big
    integers and 1.0 apart from 1; never orjson for user data)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class UserJsonResponse(Response):
    """A reply that holds user data, serialised with stdlib json (exact for integers of any size; orjson
    refuses those beyond 64 bits). Returned directly by hot routes whose dict already has the shape of their
    ``response_model``, which stays for the OpenAPI schema: FastAPI then does not validate it a second time."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def json_value(raw: bytes, empty: Any = None) -> Any:
    """User data from the memory service (JSON text); ``empty`` when there is none."""
    return json.loads(raw) if raw else empty


def storable(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse (422) what cannot be stored as UTF-8 JSON: a lone surrogate such as ``"\\ud800"`` in a key or value."""
    try:
        json_bytes(value)
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (a lone surrogate cannot be stored)") from None
    return value


# A JSON object of user data (metadata, properties) as the routes accept it.
JsonObject = Annotated[dict[str, Any], AfterValidator(storable)]


def scope_fields(message: memory_pb2.Scope) -> dict[str, str | None]:
    return {"agent_id": message.agent_id or None, "session_id": message.session_id or None,
            "run_id": message.run_id or None}


def memory_dict(m: memory_pb2.Memory) -> dict[str, Any]:
    return {
        "id": m.id, "content": m.content, "metadata": json_value(m.metadata_json, {}), **scope_fields(m.scope),
        "user_id": m.user_id, "collection": m.collection or None, "document_id": m.document_id or None,
        "hash": m.content_hash, "created_at": when(m, "created_at"), "updated_at": when(m, "updated_at"),
    }
