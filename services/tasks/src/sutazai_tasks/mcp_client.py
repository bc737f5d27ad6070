"""The MCP servers the platform uses, through the official ``mcp`` SDK: configured in one file, held open by
the tasks service (stdio servers are its child processes), restarted when they die, every call bounded in
time and in output size.

The file (YAML or JSON, ``SUTAZAI_TASKS_MCP_SERVERS_FILE``)::

    servers:
      files:                          # tools are named files/<tool> in agent definitions
        command: npx
        args: [-y, "@modelcontextprotocol/server-filesystem", /srv/data]
        env: {TOKEN: "${FILES_TOKEN}"}   # ${VAR}: from the service's environment, never in the file
        shared: true                  # users (not only admins) may call its tools via /api/v1/mcp/execute
        requires_approval: [write_file]
        timeout_s: 20
      search:
        url: https://mcp.example.com/mcp
        headers: {Authorization: "Bearer ${SEARCH_TOKEN}"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PING_EVERY_S = 5.0


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    shared: bool = False
    requires_approval: tuple[str, ...] = ()
    timeout_s: float = Field(30.0, gt=0, le=600)
    max_output_chars: int = Field(20_000, ge=100, le=1_000_000)

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("give either 'command' (stdio) or 'url' (streamable HTTP)")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"


class McpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: dict[str, ServerConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> McpConfig:
        for name in self.servers:
            if not re.match(r"^[A-Za-z0-9_-]{1,64}$", name):
                raise ValueError(f"server name {name!r}: letters, digits, '_' and '-' only")
        return self


def _expand(value: str, environ: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) not in environ:
            raise ValueError(f"{match.group(0)} is not set in the environment")
        return environ[match.group(1)]

    return _VAR.sub(one, value)


def load_config(path: str | Path | None, environ: Mapping[str, str]) -> McpConfig:
    """The configured servers (none without a file); ``${VAR}`` in env and headers come from ``environ``."""
    if not path:
        return McpConfig()
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for server in (raw.get("servers") or {}).values():
        for key in ("env", "headers"):
            if isinstance(server, dict) and isinstance(server.get(key), dict):
                server[key] = {k: _expand(str(v), environ) for k, v in server[key].items()}
    return McpConfig.model_validate(raw)


@dataclass(frozen=True, slots=True)
class ToolInfo:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    requires_approval: bool


@dataclass(frozen=True, slots=True)
class ToolOutput:
    content: str
    is_error: bool
    truncated: bool = False
    structured: Any = None
    duration_ms: float = 0.0


class McpUnavailableError(Exception):
    """The server is not connected (starting, restarting, or failing to start)."""


class UnknownToolError(Exception):
    pass


@dataclass
class _Connection:
    name: str
    config: ServerConfig
    client: Client | None = None
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    error: str = "starting"
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    broken: asyncio.Event = field(default_factory=asyncio.Event)


class McpHub:
    """One long-lived session per configured server, each kept up by its own supervising task."""

    def __init__(self, config: McpConfig) -> None:
        self._connections = {name: _Connection(name, cfg) for name, cfg in config.servers.items()}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._supervise(c), name=f"mcp:{c.name}")
                       for c in self._connections.values()]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def wait_ready(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(c.ready.wait() for c in self._connections.values()))

    def _transport(self, c: _Connection) -> Any:
        if c.config.command:
            return StdioServerParameters(command=c.config.command, args=list(c.config.args),
                                         env=dict(c.config.env) or None, cwd=c.config.cwd)
        http = httpx2.AsyncClient(headers=c.config.headers, timeout=httpx2.Timeout(c.config.timeout_s, connect=5.0))
        return streamable_http_client(c.config.url, http_client=http)

    async def _supervise(self, c: _Connection) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                # A stdio server's stderr goes to this service's log.
                async with Client(self._transport(c), read_timeout_seconds=c.config.timeout_s) as client:
                    try:
                        async with asyncio.timeout(c.config.timeout_s):
                            listed = await client.list_tools()
                        c.tools = {t.name: ToolInfo(c.name, t.name, t.description or "", dict(t.input_schema),
                                                    t.name in c.config.requires_approval) for t in listed.tools}
                        c.client, c.error = client, ""
                        c.broken.clear()
                        c.ready.set()
                        log.info("MCP server %s connected (%d tools)", c.name, len(c.tools))
                        await self._watch(c)
                    finally:
                        c.client = None
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # an MCP server failing must never take the service down
                c.error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
                log.warning("MCP server %s is down: %s", c.name, c.error)
            c.ready.set()  # waiters see the error rather than hang
            c.restarts += 1
            delay = 0.5 if time.monotonic() - started > 30 else min(delay * 2, 30.0)
            await asyncio.sleep(delay)

    async def _watch(self, c: _Connection) -> None:
        """Return when the server stops answering (a stdio child that died, a lost HTTP session)."""
        assert c.client is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_EVERY_S):
                    await c.broken.wait()
            if c.broken.is_set():
                c.error = "connection lost"
                return
            try:
                # tools/list as the heartbeat: ping is gone from the 2026-07-28 protocol. Its answer also
                # keeps the tool listing current.
                async with asyncio.timeout(PING_EVERY_S):
                    listed = await c.client.list_tools(cache_mode="bypass")
                c.tools = {t.name: ToolInfo(c.name, t.name, t.description or "", dict(t.input_schema),
                                            t.name in c.config.requires_approval) for t in listed.tools}
            except Exception as exc:
                c.error = f"heartbeat failed: {type(exc).__name__}: {exc}"[:500]
                return

    def servers(self) -> list[tuple[str, ServerConfig, bool, str, list[ToolInfo], int]]:
        return [(c.name, c.config, c.client is not None, c.error, list(c.tools.values()), c.restarts)
                for c in self._connections.values()]

    def config_of(self, server: str) -> ServerConfig | None:
        c = self._connections.get(server)
        return c.config if c else None

    def tool(self, server: str, name: str) -> ToolInfo | None:
        c = self._connections.get(server)
        return c.tools.get(name) if c else None

    async def call(self, server: str, tool: str, arguments: dict[str, Any], timeout_s: float = 0) -> ToolOutput:
        c = self._connections.get(server)
        if c is None:
            raise UnknownToolError(f"no MCP server named {server!r}")
        if c.client is None:
            raise McpUnavailableError(f"MCP server {server!r} is not connected: {c.error}")
        if tool not in c.tools:
            raise UnknownToolError(f"MCP server {server!r} has no tool {tool!r}")
        deadline = min(timeout_s, c.config.timeout_s) if timeout_s > 0 else c.config.timeout_s
        started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                result = await c.client.call_tool(tool, arguments, read_timeout_seconds=deadline)
        except TimeoutError:
            return ToolOutput(f"the tool {server}/{tool} did not answer within {deadline:g} s", True,
                              duration_ms=(time.perf_counter() - started) * 1000)
        except Exception as exc:
            c.broken.set()  # a transport failure: the supervisor reconnects (restarts a stdio child)
            raise McpUnavailableError(f"MCP server {server!r} failed: {type(exc).__name__}: {exc}") from exc
        text = "\n".join(getattr(block, "text", "") or json.dumps(block.model_dump(mode="json"))
                         for block in result.content)
        limit = c.config.max_output_chars
        return ToolOutput(text[:limit], bool(result.is_error), len(text) > limit, result.structured_content,
                          (time.perf_counter() - started) * 1000)
