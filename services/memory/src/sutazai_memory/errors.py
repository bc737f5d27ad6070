"""The memory service's errors. The servicer maps each to a gRPC status code; nothing else does.

::

    MemoryServiceError
    ├── InvalidInput        INVALID_ARGUMENT     a request field is not valid (named in the message)
    ├── NotFound            NOT_FOUND            no such memory, document or entity for this caller
    ├── Conflict            ALREADY_EXISTS       the change would duplicate another item in the scope
    ├── Unsupported         FAILED_PRECONDITION  e.g. a file type the service cannot read
    └── UpstreamError       UNAVAILABLE          chat (embeddings, inference) or a store did not answer
"""

from __future__ import annotations


class MemoryServiceError(Exception):
    """Base of every error the memory service raises on purpose."""


class InvalidInput(MemoryServiceError, ValueError):
    pass


class NotFound(MemoryServiceError, LookupError):
    pass


class Conflict(MemoryServiceError):
    pass


class Unsupported(MemoryServiceError):
    pass


class UpstreamError(MemoryServiceError, ConnectionError):
    pass


def refuse_nul(what: str, *values: str) -> None:
    """PostgreSQL stores no U+0000 in text or jsonb: a NUL from a caller is bad input, said as such (the
    gateway refuses NUL in JSON bodies, but multipart fields and other gRPC callers reach us too)."""
    if any("\x00" in v for v in values):
        raise InvalidInput(f"{what}: must not contain U+0000 (NUL)")
