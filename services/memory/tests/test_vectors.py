"""The vector index interface on every engine: Qdrant Edge (the default in process), the qdrant-client
adapter on a Qdrant server when ``QDRANT_URL`` answers, and the same adapter on qdrant-client's local mode
(same client API, in process) so its calls run on every machine. No models: vectors are made up."""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest
from qdrant_client import AsyncQdrantClient
from sutazai_memory import edge_index, keywords
from sutazai_memory.edge_index import EdgeIndex
from sutazai_memory.qdrant_server import ServerIndex
from sutazai_memory.vectors import Point, VectorIndex, match_filter

DIMS = 8


def _server_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6333), timeout=1).close()
        return True
    except OSError:
        return False


ENGINES = ["qdrant-edge", "qdrant-client-local", "qdrant-server"]


@pytest.fixture(params=ENGINES)
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    engine = request.param
    if engine == "qdrant-edge":
        idx: VectorIndex = EdgeIndex(tmp_path / "vectors")
    elif engine == "qdrant-client-local":
        idx = ServerIndex(AsyncQdrantClient(path=str(tmp_path / "local")), server=False)
    else:
        url = os.environ.get("QDRANT_URL")
        if not url:
            pytest.skip("QDRANT_URL is not set: the qdrant-client adapter was not run against a Qdrant server")
        if not _server_reachable(url):
            pytest.skip(f"no Qdrant server answers at {url}: the adapter was not run against a server")
        idx = ServerIndex.connect(url, api_key=os.environ.get("QDRANT_API_KEY"))
    name = f"memory_test_{uuid.uuid4().hex[:8]}_{DIMS}"
    await idx.ensure(name, DIMS)
    idx.test_collection = name  # type: ignore[attr-defined]
    try:
        yield idx
    finally:
        await idx.drop(name)
        await idx.close()


def _unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(DIMS)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _point(text: str, dense: list[float], **payload: object) -> Point:
    return Point(str(uuid.uuid4()), dense, keywords.document_vector(text), {"content": text, "kind": "memory",
                                                                           "collection": "", **payload})


async def test_hybrid_search_finds_by_vector_and_by_rare_word_within_the_scope_only(index: VectorIndex) -> None:
    name = index.test_collection  # type: ignore[attr-defined]
    rng = random.Random(3)
    near = _unit(rng)
    points = [_point(f"note {i} about the weather", _unit(rng), user_id="alice") for i in range(30)]
    points.append(_point("the vault code is ZEBRA-4471", _unit(rng), user_id="alice"))
    points.append(_point("a note close to the query vector", near, user_id="alice"))
    # Bob's points match the query best on both signals: they must never come back for Alice.
    points.append(_point("bob's vault code is ZEBRA-4471 too", near, user_id="bob"))
    points.append(_point("ZEBRA-4471 ZEBRA-4471", near, user_id="bob"))
    await index.upsert(name, points)

    alice = match_filter({"user_id": "alice", "kind": "memory", "collection": ""})
    for mode in ("hybrid", "dense", "keyword"):
        hits = await index.search(name, dense=near, sparse=keywords.query_vector("ZEBRA-4471"), flt=alice,
                                  limit=5, mode=mode)
        assert hits and {h.payload["user_id"] for h in hits} == {"alice"}, mode
    hybrid = await index.search(name, dense=near, sparse=keywords.query_vector("ZEBRA-4471"), flt=alice, limit=5)
    contents = [h.payload["content"] for h in hybrid]
    assert "the vault code is ZEBRA-4471" in contents[:2] and "a note close to the query vector" in contents[:2]
    keyword = await index.search(name, dense=near, sparse=keywords.query_vector("ZEBRA-4471"), flt=alice, limit=1,
                                 mode="keyword")
    assert keyword[0].payload["content"] == "the vault code is ZEBRA-4471"
    assert await index.count(name, alice) == 32
    assert await index.count(name, match_filter({"user_id": "bob"})) == 2


async def test_payload_update_delete_and_delete_by_filter(index: VectorIndex) -> None:
    name = index.test_collection  # type: ignore[attr-defined]
    rng = random.Random(5)
    a = _point("first", _unit(rng), user_id="u", tags=["x", "y"])
    b = _point("second", _unit(rng), user_id="u", tags=["y"], document_id="d1", metadata={"n": 7})
    await index.upsert(name, [a, b])
    assert await index.count(name, match_filter({"user_id": "u"}, ["y"])) == 2
    assert await index.count(name, match_filter({"user_id": "u"}, ["x", "y"])) == 1
    assert await index.count(name, match_filter({"metadata.n": 7})) == 1
    await index.set_payload(name, a.id, {**a.payload, "metadata": {"n": 7}})
    assert await index.count(name, match_filter({"metadata.n": 7})) == 2
    await index.delete_where(name, match_filter({"document_id": "d1"}))
    await index.delete(name, [a.id])
    assert await index.count(name, match_filter({"user_id": "u"})) == 0
    assert (name, DIMS) in await index.collections()


async def test_a_dense_threshold_drops_weak_vector_hits(index: VectorIndex) -> None:
    name = index.test_collection  # type: ignore[attr-defined]
    rng = random.Random(9)
    q = _unit(rng)
    await index.upsert(name, [_point("same", q, user_id="u"), _point("other", [-x for x in q], user_id="u")])
    hits = await index.search(name, dense=q, sparse=keywords.query_vector("nothing"),
                              flt=match_filter({"user_id": "u"}), limit=5, threshold=0.5, mode="dense")
    assert [h.payload["content"] for h in hits] == ["same"]


async def test_edge_shards_survive_a_restart(tmp_path: Path) -> None:
    rng = random.Random(1)
    first = EdgeIndex(tmp_path / "v")
    await first.ensure("memory_x_8", DIMS)
    p = _point("kept across restarts", _unit(rng), user_id="u")
    await first.upsert("memory_x_8", [p])
    await first.close()
    again = EdgeIndex(tmp_path / "v")
    assert await again.collections() == [("memory_x_8", DIMS)]
    hits = await again.search("memory_x_8", dense=p.dense, sparse=keywords.query_vector("restarts"),
                              flt=match_filter({"user_id": "u"}), limit=3)
    assert [h.id for h in hits] == [p.id]
    await again.close()


async def _until(done: Callable[[], bool], timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not done after {timeout_s} s")


async def _built(index: EdgeIndex, builds: int) -> None:
    await _until(lambda: index.builds >= builds and not index._builds)


async def test_edge_builds_hnsw_in_a_child_process_and_keeps_the_writes_made_meanwhile(tmp_path: Path) -> None:
    rng = random.Random(2)
    index = EdgeIndex(tmp_path / "v", build_after=300, settle_s=0.05, max_wait_s=5, indexing_threshold_kb=1)
    name = "memory_x_8"
    await index.ensure(name, DIMS)
    points = [_point(f"memory number {i}", _unit(rng), user_id="u") for i in range(400)]
    for start in range(0, 400, 100):
        await index.upsert(name, points[start:start + 100])
    assert index._builds, "300 points written: a build is due"
    await _until(lambda: name in index._journal)  # the copy is taken; the child optimises it
    late = _point("written during the build", _unit(rng), user_id="u")
    await index.upsert(name, [late])
    await index.delete(name, [points[0].id])
    await index.set_payload(name, points[1].id, {**points[1].payload, "content": "changed during the build"})
    await _built(index, 1)
    segments = [p for p in (tmp_path / "v" / name / "segments").rglob("*") if "hnsw" in p.name]
    assert segments, "the live shard has an HNSW index"
    assert not [p for p in (tmp_path / "v").iterdir() if p.name.startswith(".")], "no copy left behind"
    flt = match_filter({"user_id": "u"})
    assert await index.count(name, flt) == 400
    for point in [late, *points[2:50]]:
        hits = await index.search(name, dense=point.dense, sparse=keywords.query_vector("zzz"), flt=flt, limit=1,
                                  mode="dense")
        assert [h.id for h in hits] == [point.id]
    hits = await index.search(name, dense=points[1].dense, sparse=keywords.query_vector("x"), flt=flt, limit=1,
                              mode="dense")
    assert hits[0].payload["content"] == "changed during the build"
    assert points[0].id not in {h.id for h in await index.search(
        name, dense=points[0].dense, sparse=keywords.query_vector("x"), flt=flt, limit=5, mode="dense")}
    await index.close()
    again = EdgeIndex(tmp_path / "v")  # what was swapped in is what a restart loads
    assert await again.count(name, flt) == 400
    await again.close()


async def test_a_failed_edge_build_leaves_the_live_shard_as_it_was(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_index.sys, "executable", "/bin/false")
    rng = random.Random(3)
    index = EdgeIndex(tmp_path / "v", build_after=50, settle_s=0.01, indexing_threshold_kb=1)
    await index.ensure("memory_x_8", DIMS)
    points = [_point(f"m {i}", _unit(rng), user_id="u") for i in range(60)]
    await index.upsert("memory_x_8", points)
    await _until(lambda: not index._builds)
    assert index.builds == 0
    assert await index.count("memory_x_8", match_filter({"user_id": "u"})) == 60
    assert not [p for p in (tmp_path / "v").iterdir() if p.name.startswith(".")]
    await index.close()


async def test_an_edge_swap_cut_short_by_a_crash_is_repaired_on_start(tmp_path: Path) -> None:
    rng = random.Random(4)
    first = EdgeIndex(tmp_path / "v")
    await first.ensure("memory_x_8", DIMS)
    p = _point("survives the crash", _unit(rng), user_id="u")
    await first.upsert("memory_x_8", [p])
    await first.close()
    (tmp_path / "v" / "memory_x_8").rename(tmp_path / "v" / ".old-memory_x_8")  # the live folder moved away
    (tmp_path / "v" / ".build-memory_x_8").mkdir()  # and a copy half made
    again = EdgeIndex(tmp_path / "v")
    assert await again.collections() == [("memory_x_8", DIMS)]
    assert await again.count("memory_x_8", match_filter({"user_id": "u"})) == 1
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["memory_x_8"]
    await again.close()


async def test_a_swap_cut_short_after_the_built_shard_took_its_place_keeps_the_old_shards_writes(
        tmp_path: Path) -> None:
    """The crash came after the built folder was renamed into place but before the writes journaled during the
    build were applied: the old shard, which has them, wins."""
    rng = random.Random(5)
    first = EdgeIndex(tmp_path / "v")
    await first.ensure("memory_x_8", DIMS)
    await first.upsert("memory_x_8", [_point("before the build", _unit(rng), user_id="u")])
    await first.close()
    live, old = tmp_path / "v" / "memory_x_8", tmp_path / "v" / ".old-memory_x_8"
    shutil.copytree(live, tmp_path / "built")  # the build's copy: without the write below
    second = EdgeIndex(tmp_path / "v")
    await second.upsert("memory_x_8", [_point("journaled during the build", _unit(rng), user_id="u")])
    await second.close()
    live.rename(old)
    (tmp_path / "built").rename(live)  # crash here
    again = EdgeIndex(tmp_path / "v")
    assert await again.count("memory_x_8", match_filter({"user_id": "u"})) == 2
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["memory_x_8"]
    await again.close()
