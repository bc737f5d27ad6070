"""protobuf ``Struct``/``Value`` to plain JSON values.

``Struct`` stores every number as a double, so ``{"n": 1}`` comes back as ``{"n": 1.0}``; integral
values within the exactly-representable range are turned back into ints, which is what the client sent.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

_EXACT = 2**53


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and -_EXACT <= value <= _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def to_python(message: Message) -> Any:
    return _ints(json_format.MessageToDict(message))
