"""The vector index interface on every engine: Qdrant Edge (the default in process), the qdrant-client
adapter on a Qdrant server when ``QDRANT_URL`` answers, and the same adapter on qdrant-client's local mode
(same client API, in process) so its calls run on every machine. No models: vectors are made up."""

from __future__ import annotations

import math
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from qdrant_client import AsyncQdrantClient
from sutazai_memory import keywords
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
