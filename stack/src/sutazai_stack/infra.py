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


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _ensure_database(url: str) -> None:
    """Create the URL's database when the server lacks it (a fresh machine, a test's own database)."""
    name = urlsplit(url).path.lstrip("/") or "postgres"
    admin = await asyncpg.connect(_with_database(url, "postgres"), timeout=5)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            log.info("creating database %s", name)
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def resolve_postgres(settings: StackSettings, home: Path) -> Resolved:
    if settings.database_url:
        resolved = Resolved("postgres", settings.database_url, "configured")
    elif not settings.embedded and answers("127.0.0.1", 5432):
        resolved = Resolved("postgres", f"postgresql://postgres@127.0.0.1:5432/{settings.database_name}", "existing")
    else:
        port = _port_for(5432, settings)
        process = embedded.postgres(home, port)
        process.start()
        url = f"postgresql://postgres@127.0.0.1:{port}/{settings.database_name}"
        resolved = Resolved("postgres", url, "embedded", process)
    _wait("postgres", lambda: asyncio.run(_ensure_database(resolved.url)), settings.start_timeout_s,
          resolved.process)
    return resolved


def resolve_redis(settings: StackSettings, home: Path) -> Resolved:
    if settings.redis_url:
        resolved = Resolved("redis", settings.redis_url, "configured")
    elif not settings.embedded and answers("127.0.0.1", 6379):
        resolved = Resolved("redis", "redis://127.0.0.1:6379/0", "existing")
    else:
        port = _port_for(6379, settings)
        process = embedded.redis(home, port)
        process.start()
        resolved = Resolved("redis", f"redis://127.0.0.1:{port}/0", "embedded", process)

    def ping() -> None:
        with redis_client.Redis.from_url(resolved.url, socket_timeout=2, socket_connect_timeout=1) as client:
            client.ping()

    _wait("redis", ping, settings.start_timeout_s, resolved.process)
    return resolved


def resolve_nats(settings: StackSettings, home: Path) -> Resolved:
    if settings.nats_url:
        resolved = Resolved("nats", settings.nats_url, "configured")
    elif not settings.embedded and answers("127.0.0.1", 4222):
        resolved = Resolved("nats", "nats://127.0.0.1:4222", "existing")
    else:
        port = _port_for(4222, settings)
        process = embedded.nats(home, port)
        process.start()
        resolved = Resolved("nats", f"nats://127.0.0.1:{port}", "embedded", process)
    parts = urlsplit(resolved.url)
    host, port_ = parts.hostname or "127.0.0.1", parts.port or 4222

    def reachable() -> None:
        if not answers(host, port_):
            raise ConnectionError(f"nothing answers on {host}:{port_}")

    _wait("nats", reachable, settings.start_timeout_s, resolved.process)
    return resolved


def resolve_model_server(settings: StackSettings, home: Path) -> Resolved:
    if settings.model_url:
        resolved = Resolved("model_server", settings.model_url.rstrip("/"), "configured")
    elif not settings.embedded and not settings.free_ports and _is_openai_server("http://127.0.0.1:11435"):
        resolved = Resolved("model_server", "http://127.0.0.1:11435", "existing")
    else:
        port = _port_for(11435, settings)
        process = embedded.model_server(home, port, settings.model_server_python)
        log.info("starting the model server (llama.cpp with %s); loading the model ...", embedded.MODEL_ALIAS)
        process.start()
        resolved = Resolved("model_server", f"http://127.0.0.1:{port}", "embedded", process)
    started = time.monotonic()
    last_note = [started]

    def ready() -> None:
        if time.monotonic() - last_note[0] > 5:
            log.info("  still waiting for the model server (%.0f s) ...", time.monotonic() - started)
            last_note[0] = time.monotonic()
        if not _is_openai_server(resolved.url):
            raise ConnectionError("model server not answering yet")

    _wait("model_server", ready, settings.start_timeout_s, resolved.process)
    log.info("model server ready in %.1f s", time.monotonic() - started)
    return resolved


def resolve_embeddings(settings: StackSettings, home: Path) -> Resolved:
    """The embeddings server: configured, else one answering on 11436, else all-MiniLM-L6-v2 from the
    model server's virtualenv."""
    if settings.embeddings_url:
        resolved = Resolved("embeddings", settings.embeddings_url.rstrip("/"), "configured")
    elif not settings.embedded and not settings.free_ports and _is_openai_server("http://127.0.0.1:11436"):
        resolved = Resolved("embeddings", "http://127.0.0.1:11436", "existing")
    else:
        port = _port_for(11436, settings)
        process = embedded.embeddings_server(home, port, settings.model_server_python)
        log.info("starting the embeddings server (sentence-transformers, %s) ...", "all-MiniLM-L6-v2")
        process.start()
        resolved = Resolved("embeddings", f"http://127.0.0.1:{port}", "embedded", process)

    def ready() -> None:
        if not _is_openai_server(resolved.url):
            raise ConnectionError("embeddings server not answering yet")

    _wait("embeddings", ready, settings.start_timeout_s, resolved.process)
    return resolved


def _is_openai_server(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/v1/models", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
