"""What the memory, vectors, documents and graph routes share: the stub, message-to-JSON helpers and the
problem statuses every memory route can answer (``problem_responses`` is the gateway's shared helper)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator
from starlette.responses import Response
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai_runtime.timestamps import iso_of

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


def json_bytes(value: Any) -> bytes:
    """User data to the memory service as JSON text, exactly as the client sent it (stdlib json keeps big
    integers and 1.0 apart from 1; never orjson for user data). ValueError for NaN and Infinity (Python's json
    reads them, but they are not JSON), UnicodeEncodeError for a lone surrogate: ``storable`` turns both into
    a 422 before a route gets here."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class PassThroughJsonResponse(Response):
    """A reply whose user data (metadata) is the JSON text the memory service holds, spliced in unparsed
    (``orjson.Fragment``: ``memory_dict(..., raw=True)``), the rest serialised by orjson. Returned directly by the
    hot routes whose dict already has the shape of their ``response_model``, which stays for the OpenAPI schema:
    FastAPI then does not validate it a second time. Parsing every memory's metadata and serialising it again
    with stdlib json (exact for integers of any size, where orjson refuses those beyond 64 bits) cost a search
    of 10 results ~0.1 ms of the gateway's time at one request in flight."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_value(raw: bytes, empty: Any = None) -> Any:
    """User data from the memory service (JSON text); ``empty`` when there is none."""
    return json.loads(raw) if raw else empty


def storable(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse (422) what cannot be stored as UTF-8 JSON: a lone surrogate such as ``"\\ud800"`` in a key or value,
    or NaN / Infinity (Python's json reads them, but they are not JSON: an answer holding them would not parse)."""
    try:
        json_bytes(value)
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (a lone surrogate cannot be stored)") from None
    except ValueError:
        raise ValueError("numbers must be finite (NaN and Infinity are not JSON)") from None
    return value


# A JSON object of user data (metadata, properties) as the routes accept it.
JsonObject = Annotated[dict[str, Any], AfterValidator(storable)]


def scope_fields(message: memory_pb2.Scope) -> dict[str, str | None]:
    return {"agent_id": message.agent_id or None, "session_id": message.session_id or None,
            "run_id": message.run_id or None}


def memory_dict(m: memory_pb2.Memory, *, raw: bool = False) -> dict[str, Any]:
    """The memory as the routes answer it; ``raw``: its metadata as the stored JSON text, for
    ``PassThroughJsonResponse``."""
    metadata = (orjson.Fragment(m.metadata_json or b"{}") if raw else json_value(m.metadata_json, {}))
    return {
        "id": m.id, "content": m.content, "metadata": metadata, **scope_fields(m.scope),
        "user_id": m.user_id, "collection": m.collection or None, "document_id": m.document_id or None,
        "hash": m.content_hash, "created_at": iso_of(m, "created_at"), "updated_at": iso_of(m, "updated_at"),
    }
