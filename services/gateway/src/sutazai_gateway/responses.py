"""JSON responses serialised with orjson, for routes whose bodies the gateway builds itself from protobuf
fields (strings, 32/64-bit numbers, lists): orjson is several times faster than ``json`` and FastAPI's
response-model path. Never for user payloads: orjson refuses integers beyond 64 bits, which a client may send."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return OrjsonResponse(content, status_code=status_code, headers=headers)
