"""JSON logging to stdout, configured once per process."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from urllib.parse import urlsplit, urlunsplit

from pythonjsonlogger.json import JsonFormatter

# The request being served (set by the gateway's request-id middleware): every log line written while it is
# served carries it as ``request_id``.
REQUEST_ID: ContextVar[str | None] = ContextVar("sutazai_request_id", default=None)

# Credentials that must never reach a log line, whatever a message or a library puts in it: our API keys,
# JWTs, and the value of a Bearer authorization.
_SECRETS = re.compile(
    r"sk-sutazai-[a-z0-9]{8}-[A-Za-z0-9_-]{6,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
)


def redact(text: str) -> str:
    """``text`` with every API key, JWT and bearer credential replaced by ``[redacted]``."""
    return _SECRETS.sub("[redacted]", text)


class _Context(logging.Filter):
    """Adds the request id to a record and scrubs credentials from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        message = record.getMessage()
        if "sk-sutazai-" in message or "eyJ" in message or "earer " in message:
            record.msg, record.args = redact(message), None
        return True


def configure_logging(level: str, service: str) -> None:
    """Send every record to stdout as one JSON object with the service name on it."""
    handler = logging.StreamHandler(sys.stdout)
    # trace_id / span_id on lines logged inside a span (a no-op while tracing is off)
    from sutazai_runtime.telemetry import TraceIdsFilter

    handler.addFilter(TraceIdsFilter())
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_Context())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log every connection or request at INFO drown the service's own lines (httpx: a line per
    # request of the official model clients, chat's backend probe among them, about one a second per backend).
    for noisy in ("asyncio", "grpc._cython", "nats.aio.client", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def redact_url(url: str) -> str:
    """The URL without its password, for logs and health output (secrets never appear in logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
