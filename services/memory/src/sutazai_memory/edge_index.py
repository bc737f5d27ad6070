"""The vector index in process with Qdrant Edge (``qdrant-edge-py``): Qdrant's engine in Rust, the same
dense/sparse vectors, IDF modifier, payload indexes, prefetch and RRF fusion as a Qdrant server, with no
server to run. One shard per collection, in ``<data folder>/<collection>``, with a write-ahead log (an
acknowledged write survives a crash). The shard locks its folder: one memory process per folder.

Calls run on the event loop's thread: the binding holds the GIL for the whole call, so a worker thread
would only add a hop (a hybrid search at 20,000 memories takes a few milliseconds, see bench/README.md).

Edge never optimises on its own (optimisation is manual in Qdrant Edge, and ``optimize()`` holds the GIL
for its whole run, tens of seconds at 20,000 points on this machine), so the service leaves segments plain:
searches are exact, in Rust, with the payload indexes narrowing the candidates. ``python -m sutazai_memory
optimize`` builds HNSW while the service is stopped; a Qdrant server does it in the background.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from sutazai_memory.vectors import DENSE, INDEXED_FIELDS, KEYWORDS, RRF_K, Hit, Match, Point, Sparse

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z0-9_]{1,200}$")


def to_filter(flt: Match) -> qe.Filter:
    must: list[Any] = [qe.FieldCondition(key, match=qe.MatchValue(value)) for key, value in flt.conditions.items()]
    must.extend(qe.FieldCondition("tags", match=qe.MatchValue(tag)) for tag in flt.tags)
    return qe.Filter(must=must)


def _sparse(s: Sparse) -> qe.SparseVector:
    return qe.SparseVector(list(s.indices), list(s.values))


def _config(dimensions: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine)},
        sparse_vectors={KEYWORDS: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


class EdgeIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, int] = {}
        for folder in sorted(path.iterdir()):
            if (folder / "edge_config.json").exists() and _NAME.match(folder.name):
                self._open(folder.name)

    @property
    def backend(self) -> str:
        return "qdrant-edge"

    def _open(self, name: str) -> qe.EdgeShard:
        folder = self.path / name
        shard = qe.EdgeShard.load(str(folder))
        config = json.loads((folder / "edge_config.json").read_text())
        self._dims[name] = int(config["vectors"][DENSE]["size"])
        self._shards[name] = shard
        return shard

    def shard(self, name: str) -> qe.EdgeShard | None:
        return self._shards.get(name)

    async def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()

    async def ping(self) -> None:
        if not self.path.is_dir():
            raise RuntimeError(f"{self.path} is gone")

    async def exists(self, name: str) -> bool:
        return name in self._shards

    async def ensure(self, name: str, dimensions: int) -> None:
        if name in self._shards:
            return
        if not _NAME.match(name):
            raise ValueError(f"collection name {name!r}")
        shard = qe.EdgeShard.create(str(self.path / name), _config(dimensions))
        for field in INDEXED_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        self._shards[name], self._dims[name] = shard, dimensions
        log.info("created collection", extra={"collection": name, "dimensions": dimensions, "engine": "qdrant-edge"})

    async def drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        self._dims.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.path / name, ignore_errors=True)

    async def upsert(self, name: str, points: Sequence[Point]) -> None:
        if points:
            self._shards[name].update(qe.UpdateOperation.upsert_points([
                qe.Point(p.id, {DENSE: p.dense, KEYWORDS: _sparse(p.sparse)}, p.payload) for p in points
            ]))

    async def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        self._shards[name].update(qe.UpdateOperation.set_payload([point_id], payload))

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids and name in self._shards:
            self._shards[name].update(qe.UpdateOperation.delete_points(list(ids)))

    async def delete_where(self, name: str, flt: Match) -> None:
        if name in self._shards:
            self._shards[name].update(qe.UpdateOperation.delete_points_by_filter(to_filter(flt)))

    async def count(self, name: str, flt: Match) -> int:
        shard = self._shards.get(name)
        return int(shard.count(qe.CountRequest(exact=True, filter=to_filter(flt)))) if shard else 0

    async def search(
        self, name: str, *, dense: list[float], sparse: Sparse, flt: Match, limit: int,
        threshold: float | None = None, mode: str = "hybrid",
    ) -> list[Hit]:
        shard = self._shards.get(name)
        if shard is None:
            return []
        qf = to_filter(flt)
        if mode == "dense":
            request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(dense, using=DENSE), filter=qf,
                                      score_threshold=threshold, with_payload=True)
        elif mode == "keyword":
            if not sparse.indices:
                return []
            request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(_sparse(sparse), using=KEYWORDS),
                                      filter=qf, with_payload=True)
        else:
            depth = max(limit * 4, 40)
            prefetch = [qe.Prefetch(limit=depth, query=qe.Query.Nearest(dense, using=DENSE), filter=qf,
                                    score_threshold=threshold)]
            if sparse.indices:
                prefetch.append(qe.Prefetch(limit=depth, query=qe.Query.Nearest(_sparse(sparse), using=KEYWORDS),
                                            filter=qf))
            request = qe.QueryRequest(limit=limit, prefetches=prefetch, query=qe.Fusion.Rrf(k=RRF_K),
                                      with_payload=True)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in shard.query(request)]

    async def collections(self) -> list[tuple[str, int]]:
        return sorted(self._dims.items())

    def optimize(self) -> bool:
        """Build HNSW and merge segments (blocking, holds the GIL: only while the service is stopped)."""
        changed = False
        for name, shard in self._shards.items():
            log.info("optimizing", extra={"collection": name})
            changed = shard.optimize() or changed
        return changed
