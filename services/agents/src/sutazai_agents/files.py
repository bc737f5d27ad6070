"""File-defined agents: load the ``*.md`` files of one folder and keep them current as files change.

A file that does not parse or validate is logged (naming the file and the field) and skipped; it never
stops the service. A change is picked up by ``watch`` within a fraction of a second (the watcher groups
events over ``step_ms`` of quiet, at most ``debounce_ms``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import watchfiles

from sutazai_agents.definitions import parse_markdown
from sutazai_agents.errors import DefinitionError
from sutazai_agents.registry import Agent

log = logging.getLogger(__name__)

_SKIPPED_NAMES = {"readme.md"}


def is_definition_file(path: Path, folder: Path) -> bool:
    """Top-level ``*.md`` files of ``folder``, except READMEs and names starting with ``.`` or ``_``."""
    return (
        path.suffix == ".md"
        and path.parent == folder
        and not path.name.startswith((".", "_"))
        and path.name.lower() not in _SKIPPED_NAMES
    )


def _relevant(path: Path, folder: Path) -> bool:
    """Definition files, and the ``..data`` links through which a Kubernetes ConfigMap volume swaps
    every file at once (the ``*.md`` entries are symlinks into it and see no event of their own)."""
    return is_definition_file(path, folder) or (path.parent == folder and path.name.startswith(".."))


def read_agent(path: Path) -> Agent:
    """Parse one file; raises ``DefinitionError`` (or ``OSError`` when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(path.name, [("", f"not UTF-8 text: {exc}")]) from None
    definition = parse_markdown(text, path.name)
    return Agent(definition, "file", datetime.fromtimestamp(path.stat().st_mtime, UTC))


def _dir_identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class FileAgents:
    """The agents defined in ``folder``. Read ``agents``; ``load_all`` and ``watch`` keep it current."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self._agents: dict[str, Agent] = {}
        self.loaded = asyncio.Event()  # set after the first full load (tests wait on it)
        # Called after the files changed while watching (the service announces it; caches drop their copies).
        self.on_change: Callable[[], Awaitable[None]] | None = None

    @property
    def agents(self) -> Mapping[str, Agent]:
        return self._agents

    def load_all(self) -> None:
        """Read every definition file again (at start, and whenever watching restarts)."""
        found: dict[str, Agent] = {}
        paths = sorted(self.folder.glob("*.md")) if self.folder.is_dir() else []
        for path in paths:
            if is_definition_file(path, self.folder):
                agent = self._read(path)
                if agent is not None:
                    found[agent.id] = agent
        self._agents = found
        self.loaded.set()
        log.info("loaded agent definitions", extra={"folder": str(self.folder), "agents": len(found)})

    def refresh(self, path: Path) -> None:
        """Bring one file's agent up to date with the file as it is now (present, changed or gone)."""
        agent_id = path.name.removesuffix(".md")
        agent = self._read(path) if path.exists() else None
        agents = dict(self._agents)  # replace, never mutate: readers iterate without locks
        if agent is None:
            if agents.pop(agent_id, None) is not None:
                log.info("agent removed", extra={"agent": agent_id, "file": path.name})
        else:
            agents[agent.id] = agent
            log.info("agent loaded", extra={"agent": agent.id, "file": path.name})
        self._agents = agents

    def _read(self, path: Path) -> Agent | None:
        try:
            return read_agent(path)
        except DefinitionError as exc:
            log.error("skipping invalid agent definition: %s", exc, extra={"file": str(path)})
        except FileNotFoundError:
            pass  # deleted between the event and the read
        except OSError as exc:
            log.error("skipping unreadable agent definition: %s", exc, extra={"file": str(path)})
        return None

    async def _guard_folder(self, replaced: asyncio.Event, interval_s: float) -> None:
        """Set ``replaced`` when the folder is gone or is no longer the same directory."""
        identity = _dir_identity(self.folder)
        while _dir_identity(self.folder) == identity:  # noqa: ASYNC110 - polling the file system
            await asyncio.sleep(interval_s)
        replaced.set()

    async def _announce(self) -> None:
        if self.on_change is not None:
            try:
                await self.on_change()
            except Exception:  # an announcement is a courtesy to caches (they also expire): never stop watching
                log.warning("could not announce the agent files' change", exc_info=True)

    async def watch(self, *, debounce_ms: int = 400, step_ms: int = 50, retry_s: float = 1.0) -> None:
        """Load, then follow changes until cancelled. Never raises: a missing folder is waited for, and a
        watcher that fails is restarted after a full reload."""
        while True:
            try:
                await asyncio.to_thread(self.load_all)
                if not self.folder.is_dir():
                    log.warning("agent folder does not exist; waiting for it", extra={"folder": str(self.folder)})
                    while not self.folder.is_dir():  # noqa: ASYNC110 - polling for a folder to appear
                        await asyncio.sleep(retry_s)
                    continue
                # inotify loses a folder that is removed or replaced; a guard notices and restarts the watch.
                replaced = asyncio.Event()
                guard = asyncio.create_task(self._guard_folder(replaced, retry_s))
                try:
                    async for changes in watchfiles.awatch(
                        self.folder,
                        watch_filter=lambda _change, p: _relevant(Path(p), self.folder),
                        debounce=debounce_ms,
                        step=step_ms,
                        recursive=False,
                        stop_event=replaced,
                    ):
                        paths = sorted({Path(p) for _, p in changes})
                        if all(is_definition_file(p, self.folder) for p in paths):
                            for path in paths:
                                self.refresh(path)
                        else:  # a Kubernetes ConfigMap swapped its ``..data`` link: every file may differ
                            await asyncio.to_thread(self.load_all)
                        await self._announce()
                finally:
                    guard.cancel()
                log.warning("agent folder removed or replaced; watching again", extra={"folder": str(self.folder)})
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching the agent folder failed; restarting", extra={"folder": str(self.folder)})
            await asyncio.sleep(retry_s)
