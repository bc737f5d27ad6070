"""Resolve each part of the infrastructure: configured URL, else a server on the standard port,
else the embedded default."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis as redis_client
from sutazai_runtime.logging import redact_url
from tenacity import Retrying, retry_if_not_exception_type, stop_after_delay, wait_fixed

from sutazai_stack import embedded
from sutazai_stack.config import StackSettings
from sutazai_stack.ports import answers, free_port
from sutazai_stack.processes import ManagedProcess

log = logging.getLogger(__name__)

Origin = Literal["configured", "existing", "embedded"]


@dataclass
class Resolved:
    name: str
    url: str
    origin: Origin
    process: ManagedProcess | None = None

    def describe(self) -> str:
        return f"{self.name:<13} {self.origin:<10} {redact_url(self.url)}"


class StartError(RuntimeError):
    pass


def _wait(name: str, ready: Callable[[], None], timeout_s: float, process: ManagedProcess | None) -> None:
    """Call ``ready`` until it stops raising, the process dies, or ``timeout_s`` passes."""

    def check() -> None:
        if process is not None and not process.running():
            raise StartError(f"{name} exited during start-up; its log ends with:\n{process.tail()}")
        ready()

    try:
        for attempt in Retrying(
            stop=stop_after_delay(timeout_s), wait=wait_fixed(0.2), reraise=True,
            retry=retry_if_not_exception_type(StartError),
        ):
            with attempt:
                check()
    except StartError:
        raise
    except Exception as exc:
        tail = process.tail() if process else ""
        raise StartError(f"{name} did not become ready within {timeout_s:.0f} s: {exc}\n{tail}") from exc


def _port_for(standard: int, settings: StackSettings) -> int:
    if not settings.free_ports and not answers("127.0.0.1", standard):
        return standard
    return free_port()


def with_path(url: str, database: str) -> str:
    """``url`` with its path (a PostgreSQL database, a Redis database number) replaced."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _ensure_database(url: str) -> None:
    """Create the URL's database when the server lacks it (a fresh machine, a test's own database)."""
    name = urlsplit(url).path.lstrip("/") or "postgres"
    admin = await asyncpg.connect(with_path(url, "postgres"), timeout=5)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            log.info("creating database %s", name)
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@dataclass(frozen=True)
class Part:
    """One piece of infrastructure and how to find, start and wait for it."""

    name: str
    configured: Callable[[StackSettings], str | None]
    standard_port: int
    url_for: Callable[[int, StackSettings], str]
    start: Callable[[Path, int, StackSettings], ManagedProcess]
    ready: Callable[[str], None]  # raises until the server at the URL is ready
    # Servers the stack itself would start (model, embeddings) are not shared with a free-ports stack.
    share_when_free_ports: bool = True
    answering: Callable[[str, int], bool] = lambda url, port: answers("127.0.0.1", port)


def resolve(part: Part, settings: StackSettings, home: Path) -> Resolved:
    """A configured URL; else a server already answering on the standard port; else the embedded one."""
    configured = part.configured(settings)
    standard_url = part.url_for(part.standard_port, settings)
    if configured:
        resolved = Resolved(part.name, configured.rstrip("/"), "configured")
    elif (
        not settings.embedded
        and (part.share_when_free_ports or not settings.free_ports)
        and part.answering(standard_url, part.standard_port)
    ):
        resolved = Resolved(part.name, standard_url, "existing")
    else:
        port = _port_for(part.standard_port, settings)
        process = part.start(home, port, settings)
        log.info("starting %s ...", part.name)
        process.start()
        resolved = Resolved(part.name, part.url_for(port, settings), "embedded", process)
    started = time.monotonic()
    last_note = [started]

    def ready() -> None:
        if time.monotonic() - last_note[0] > 5:  # show progress while a model loads
            log.info("  still waiting for %s (%.0f s) ...", part.name, time.monotonic() - started)
            last_note[0] = time.monotonic()
        part.ready(resolved.url)

    _wait(part.name, ready, settings.start_timeout_s, resolved.process)
    if resolved.process:
        log.info("%s ready in %.1f s", part.name, time.monotonic() - started)
    return resolved


def _redis_ping(url: str) -> None:
    with redis_client.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1) as client:
        client.ping()


def _tcp_answers(url: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    if not answers(host, port):
        raise ConnectionError(f"nothing answers on {host}:{port}")


def _openai_answers(url: str) -> None:
    if not _is_openai_server(url):
        raise ConnectionError(f"{url} does not answer GET /v1/models yet")


PARTS = (
    Part(
        "postgres", lambda s: s.database_url, 5432,
        lambda port, s: f"postgresql://postgres@127.0.0.1:{port}/{s.database_name}",
        lambda home, port, s: embedded.postgres(home, port),
        lambda url: asyncio.run(_ensure_database(url)),
    ),
    Part(
        "redis", lambda s: s.redis_url, 6379, lambda port, s: f"redis://127.0.0.1:{port}/0",
        lambda home, port, s: embedded.redis(home, port), _redis_ping,
    ),
    Part(
        "nats", lambda s: s.nats_url, 4222, lambda port, s: f"nats://127.0.0.1:{port}",
        lambda home, port, s: embedded.nats(home, port), _tcp_answers,
    ),
    Part(
        "model_server", lambda s: s.model_url, 11435, lambda port, s: f"http://127.0.0.1:{port}",
        lambda home, port, s: embedded.model_server(home, port, s.model_server_python), _openai_answers,
        share_when_free_ports=False, answering=lambda url, port: _is_openai_server(url),
    ),
    Part(
        "embeddings", lambda s: s.embeddings_url, 11436, lambda port, s: f"http://127.0.0.1:{port}",
        lambda home, port, s: embedded.embeddings_server(home, port, s.model_server_python), _openai_answers,
        share_when_free_ports=False, answering=lambda url, port: _is_openai_server(url),
    ),
)


def _is_openai_server(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/v1/models", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
