"""Chat's health probe of its model backends: a backend that is busy (accepts connections, answers nothing
yet, as a single-slot llama.cpp server does while it generates for someone else) is not down; a backend that
refuses connections is."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from sutazai_chat.__main__ import accepts_connections, backends_probe, build_service
from sutazai_chat.config import Settings


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: a server busy with another request."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service(url: str):  # type: ignore[no-untyped-def]
    settings = Settings(backends=f'[{{"name": "local", "url": "{url}", "kind": "openai"}}]')
    return build_service(settings, None)  # type: ignore[arg-type]  # the probe never touches the cache


async def test_a_busy_backend_that_accepts_connections_is_healthy(silent_server: str) -> None:
    await accepts_connections(silent_server, 1.0)
    probe = backends_probe(_service(silent_server), busy_after_s=0.2)
    async with asyncio.timeout(2):
        await probe.check()  # list_models gets no answer in time; the connection is accepted: busy, not down


async def test_a_backend_that_refuses_connections_is_down() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(OSError):
        await accepts_connections(url, 1.0)
    with pytest.raises(ConnectionError):
        await backends_probe(_service(url), busy_after_s=0.2).check()
