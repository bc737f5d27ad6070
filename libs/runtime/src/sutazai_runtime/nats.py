"""NATS connection and JetStream stream set-up."""

from __future__ import annotations

import dataclasses
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)


async def connect_nats(url: str, *, name: str, connect_timeout_s: float = 2.0) -> Client:
    """A client that reconnects forever once connected (the first connection is the caller's to retry)."""

    async def on_disconnect() -> None:
        log.warning("disconnected from NATS")

    async def on_reconnect() -> None:
        log.info("reconnected to NATS")

    async def on_error(exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    return await nats.connect(
        servers=[url],
        name=name,
        connect_timeout=connect_timeout_s,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig, *, disposable: bool = False) -> StreamInfo:
    """Create the stream, or bring an existing one to ``config``. JetStream cannot change a stream's
    storage type in place: a ``disposable`` stream (its messages may be lost, e.g. events) is then
    deleted and created anew; any other stream keeps its storage and the difference is logged."""
    try:
        info = await js.stream_info(config.name or "")
    except NotFoundError:
        log.info("creating JetStream stream %s", config.name)
        return await js.add_stream(config)
    if config.storage is not None and info.config.storage != config.storage:
        if disposable:
            log.info("re-creating JetStream stream %s with %s storage", config.name, config.storage)
            await js.delete_stream(config.name or "")
            return await js.add_stream(config)
        log.warning("stream %s keeps %s storage (wanted %s)", config.name, info.config.storage, config.storage)
        config = dataclasses.replace(config, storage=info.config.storage)
    return await js.update_stream(config)
