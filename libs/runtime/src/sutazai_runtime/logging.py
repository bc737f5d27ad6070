"""JSON logging to stdout, configured once per process."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit, urlunsplit

from pythonjsonlogger.json import JsonFormatter


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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log every connection at INFO drown the service's own lines.
    for noisy in ("asyncio", "grpc._cython", "nats.aio.client"):
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
