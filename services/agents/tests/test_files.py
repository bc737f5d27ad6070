"""The folder of definitions: bad files are skipped, and the watcher sees add/edit/delete within 2 s."""

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sutazai_agents.files import FileAgents

pytestmark = pytest.mark.timeout(60)


def write(folder: Path, name: str, description: str = "d", body: str = "You help.") -> Path:
    path = folder / name
    path.write_text(f"---\nname: {path.stem}\ndescription: {description}\n---\n{body}\n", encoding="utf-8")
    return path


async def eventually(predicate: Callable[[], bool], within_s: float = 2.0) -> float:
    """Seconds until ``predicate`` held; fails after ``within_s``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > within_s:
            raise AssertionError(f"not seen within {within_s} s")
        await asyncio.sleep(0.02)
    return loop.time() - start


async def subscribed(agents: FileAgents, folder: Path) -> None:
    """Return once the watcher delivers changes: a probe file shows up in ``agents``, then goes away.
    (inotify gives no sign that it is subscribed; a change made before that is never reported.)"""
    probe = folder / "zz-watch-probe.md"
    async with asyncio.timeout(10):
        while probe.stem not in agents.agents:
            write(folder, probe.name)  # again until seen: an early write may predate the subscription
            await asyncio.sleep(0.2)
        probe.unlink()
        while probe.stem in agents.agents:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def watching(folder: Path) -> AsyncIterator[FileAgents]:
    agents = FileAgents(folder)
    task = asyncio.create_task(agents.watch())
    await asyncio.wait_for(agents.loaded.wait(), 5)
    await subscribed(agents, folder)
    try:
        yield agents
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_a_bad_file_is_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "good.md")
    (tmp_path / "bad.md").write_text("---\nname: bad\ndescription: d\ntemperature: 9\n---\nP\n")
    (tmp_path / "README.md").write_text("# not an agent\n")
    (tmp_path / "notes.txt").write_text("ignored")
    agents = FileAgents(tmp_path)
    with caplog.at_level(logging.ERROR):
        agents.load_all()
    assert list(agents.agents) == ["good"]
    assert any("bad.md: temperature:" in r.getMessage() for r in caplog.records)
    assert not any("README" in r.getMessage() for r in caplog.records)


def test_a_missing_folder_gives_no_agents(tmp_path: Path) -> None:
    agents = FileAgents(tmp_path / "nowhere")
    agents.load_all()
    assert agents.agents == {}


async def test_add_edit_and_delete_are_seen_within_2_s(tmp_path: Path) -> None:
    write(tmp_path, "first.md")
    async with watching(tmp_path) as agents:
        assert list(agents.agents) == ["first"]

        write(tmp_path, "second.md", description="new one")
        await eventually(lambda: "second" in agents.agents)

        write(tmp_path, "second.md", description="edited")
        await eventually(lambda: agents.agents["second"].definition.description == "edited")

        (tmp_path / "first.md").unlink()
        await eventually(lambda: "first" not in agents.agents)
        assert list(agents.agents) == ["second"]


async def test_a_file_turned_bad_is_dropped_and_comes_back_when_fixed(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.md")
    async with watching(tmp_path) as agents:
        path.write_text("---\nname: agent\n---\nno description\n")
        await eventually(lambda: "agent" not in agents.agents)
        write(tmp_path, "agent.md", description="fixed")
        await eventually(lambda: "agent" in agents.agents)


async def test_an_atomic_rename_is_seen(tmp_path: Path) -> None:
    async with watching(tmp_path) as agents:
        temp = write(tmp_path, ".incoming.md.tmp")
        temp.rename(tmp_path / "renamed.md")
        await eventually(lambda: "renamed" in agents.agents)


async def test_a_folder_created_later_is_picked_up(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    agents = FileAgents(folder)
    task = asyncio.create_task(agents.watch(retry_s=0.1))
    try:
        await asyncio.wait_for(agents.loaded.wait(), 5)
        folder.mkdir()
        write(folder, "late.md")
        await eventually(lambda: "late" in agents.agents, within_s=3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_removed_and_recreated_folder_is_watched_again(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    write(folder, "one.md")
    agents = FileAgents(folder)
    task = asyncio.create_task(agents.watch(retry_s=0.1))
    try:
        await asyncio.wait_for(agents.loaded.wait(), 5)
        await subscribed(agents, folder)
        shutil.rmtree(folder)
        await eventually(lambda: agents.agents == {})
        folder.mkdir()
        write(folder, "two.md")
        await eventually(lambda: list(agents.agents) == ["two"])
        write(folder, "three.md")
        await eventually(lambda: sorted(agents.agents) == ["three", "two"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_configmap_style_swap_of_every_file_is_seen(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as ``name.md -> ..data/name.md`` and ``..data -> ..<version>``, and
    updates it by replacing the ``..data`` link: no event names the ``*.md`` files themselves."""
    for version, description in (("..v1", "old"), ("..v2", "new")):
        (tmp_path / version).mkdir()
        write(tmp_path / version, "agent.md", description=description)
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "agent.md").symlink_to("..data/agent.md")
    async with watching(tmp_path) as agents:
        assert agents.agents["agent"].definition.description == "old"
        (tmp_path / "..data_tmp").symlink_to("..v2")
        (tmp_path / "..data_tmp").rename(tmp_path / "..data")
        await eventually(lambda: agents.agents["agent"].definition.description == "new")
