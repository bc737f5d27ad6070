"""Retrying a dependency's first connection, so services may start in any order."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import nats.errors
import redis.exceptions
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, stop_after_delay, wait_exponential

T = TypeVar("T")

# What "not answering yet" looks like; anything else (a bug, bad configuration) fails at once.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
    nats.errors.Error,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
log = logging.getLogger(__name__)


class DependencyUnavailableError(RuntimeError):
    """A dependency did not answer within the start-up deadline."""


async def connect_with_retry(name: str, connect: Callable[[], Awaitable[T]], *, timeout_s: float) -> T:
    """Call ``connect`` until it succeeds or ``timeout_s`` passes (exponential back-off, capped at 2 s)."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type(TRANSIENT),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                result = await connect()
        log.info("connected to %s", name)
        return result
    except TRANSIENT as exc:
        raise DependencyUnavailableError(f"{name} did not answer within {timeout_s:.0f} s: {exc}") from exc
