"""The vector index in process with Qdrant Edge (``qdrant-edge-py``): Qdrant's engine in Rust, the same
dense/sparse vectors, IDF modifier, payload indexes, prefetch and RRF fusion as a Qdrant server, with no
server to run. One shard per collection, in ``<data folder>/<collection>``, with a write-ahead log (an
acknowledged write survives a crash). The shard locks its folder: one memory process per folder.

Calls run on the event loop's thread: the binding holds the GIL for the whole call, so a worker thread
would only add a hop (a hybrid search at 20,000 memories takes a few milliseconds, see bench/README.md).

**HNSW is built in a child process, off the serving path** (``build_after`` > 0, the service's
``SUTAZAI_MEMORY_INDEX_AFTER``). Edge never optimises on its own, and ``optimize()`` holds the GIL for its
whole run (~3 s at 20,000 points here), which would freeze the service. Once ``build_after`` points have
been written since the last build and writes have paused for ``settle_s`` (or ``max_wait_s`` has passed):

1. writes wait while the shard is flushed and its folder copied to ``.build-<name>`` (~0.3 s at 20,000);
2. a child process (``python -m sutazai_memory.edge_index <folder>``, niced) loads the copy and runs
   ``optimize()``: Qdrant's own optimisers, HNSW for segments over the indexing threshold (Qdrant's
   default, ~6,500 vectors of 384 floats); meanwhile searches use the live shard and every write to it is
   also kept in a journal;
3. on the loop, with nothing in between: the live shard is closed, the built folder takes its place, is
   loaded (~90 ms, the only pause searches see) and the journal is applied to it.

A crash during the swap is repaired on the next start: until the journal is applied to the built shard and
flushed, ``.old-<name>`` (every acknowledged write) is put back; a failed build leaves the live shard as it
was. ``python -m sutazai_memory optimize`` still optimises in place with the service stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
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


def _config(dimensions: int, indexing_threshold_kb: int | None = None, search_threads: int = 0) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine)},
        sparse_vectors={KEYWORDS: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        optimizers=(qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb)
                    if indexing_threshold_kb is not None else None),
        max_search_threads=search_threads or None,
    )


class EdgeIndex:
    """``build_after``: points written since the last HNSW build that start the next one in the background
    (0: never; the service's default is in ``config.Settings.index_after``). ``indexing_threshold_kb``:
    Qdrant's segment size above which optimisation builds HNSW, for new collections (None: Qdrant's default).
    ``search_threads``: the threads of each shard's search pool (0: Qdrant's default, one per CPU; see
    ``config.Settings.search_threads``)."""

    def __init__(self, path: Path, *, build_after: int = 0, settle_s: float = 2.0, max_wait_s: float = 60.0,
                 indexing_threshold_kb: int | None = None, search_threads: int = 0) -> None:
        self.path = path
        self._search_threads = search_threads
        path.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, int] = {}
        self._build_after, self._settle_s, self._max_wait_s = build_after, settle_s, max_wait_s
        self._indexing_threshold_kb = indexing_threshold_kb
        self._pending: dict[str, int] = {}  # points written since the last build's copy
        self._last_write: dict[str, float] = {}
        self._journal: dict[str, list[qe.UpdateOperation]] = {}  # writes made while a build runs
        self._write_locks: dict[str, asyncio.Lock] = {}
        self._builds: dict[str, asyncio.Task[None]] = {}
        self.builds = 0  # swaps done (tests, logs)
        _repair(path)
        for folder in sorted(path.iterdir()):
            if (folder / "edge_config.json").exists() and _NAME.match(folder.name):
                self._open(folder.name)

    @property
    def backend(self) -> str:
        return "qdrant-edge"

    def _open(self, name: str) -> qe.EdgeShard:
        shard = self._load(self.path / name)
        self._shards[name] = shard
        return shard

    def _load(self, folder: Path) -> qe.EdgeShard:
        """Load a shard with this service's search pool size (kept on disk in its config; the rest of the
        stored config, such as the indexing threshold, stays as it was)."""
        config = json.loads((folder / "edge_config.json").read_text())
        dimensions = int(config["vectors"][DENSE]["size"])
        self._dims[folder.name] = dimensions
        if not self._search_threads:
            return qe.EdgeShard.load(str(folder))
        return qe.EdgeShard.load(str(folder), _config(dimensions, search_threads=self._search_threads))

    def shard(self, name: str) -> qe.EdgeShard | None:
        return self._shards.get(name)

    async def close(self) -> None:
        for task in list(self._builds.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        shard = qe.EdgeShard.create(str(self.path / name), _config(dimensions, self._indexing_threshold_kb,
                                                                  self._search_threads))
        for field in INDEXED_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        self._shards[name], self._dims[name] = shard, dimensions
        log.info("created collection", extra={"collection": name, "dimensions": dimensions, "engine": "qdrant-edge"})

    async def drop(self, name: str) -> None:
        if (task := self._builds.get(name)) is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.pop(name, None)
        shard = self._shards.pop(name, None)
        self._dims.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.path / name, ignore_errors=True)

    async def upsert(self, name: str, points: Sequence[Point]) -> None:
        if points:
            await self._write(name, qe.UpdateOperation.upsert_points([
                qe.Point(p.id, {DENSE: p.dense, KEYWORDS: _sparse(p.sparse)}, p.payload) for p in points
            ]), len(points))

    async def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        await self._write(name, qe.UpdateOperation.set_payload([point_id], payload), 1)

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids and name in self._shards:
            await self._write(name, qe.UpdateOperation.delete_points(list(ids)), len(ids))

    async def delete_where(self, name: str, flt: Match) -> None:
        if name in self._shards:
            await self._write(name, qe.UpdateOperation.delete_points_by_filter(to_filter(flt)), 1)

    async def _write(self, name: str, operation: qe.UpdateOperation, points: int) -> None:
        """Every write: waits while a build copies the folder, is journaled while a build runs, and counts
        towards the next build."""
        lock = self._write_locks.get(name)
        if lock is not None and lock.locked():
            async with lock:
                pass
        self._shards[name].update(operation)
        if (journal := self._journal.get(name)) is not None:
            journal.append(operation)
        if self._build_after > 0:
            self._pending[name] = self._pending.get(name, 0) + points
            self._last_write[name] = time.monotonic()
            if self._pending[name] >= self._build_after and name not in self._builds:
                self._builds[name] = asyncio.get_running_loop().create_task(self._build(name))

    async def _build(self, name: str) -> None:
        """Build HNSW for ``name`` in a child process and swap it in (see the module's docstring)."""
        work = self.path / f".build-{name}"
        started = time.monotonic()
        again = True  # another build may be due when this one ends; not after a cancellation (close, drop)
        try:
            while True:  # until writes have paused, or waited long enough
                quiet = time.monotonic() - self._last_write.get(name, 0.0)
                if quiet >= self._settle_s or time.monotonic() - started >= self._max_wait_s:
                    break
                await asyncio.sleep(self._settle_s - quiet)
            lock = self._write_locks.setdefault(name, asyncio.Lock())
            async with lock:  # writes wait: the copy must be one state of the shard
                shard = self._shards[name]
                shard.flush()
                shutil.rmtree(work, ignore_errors=True)
                await asyncio.to_thread(shutil.copytree, self.path / name, work)
                self._journal[name] = []
                self._pending[name] = 0
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sutazai_memory.edge_index", str(work),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await child.communicate()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
                raise
            if child.returncode != 0:
                again = False
                log.warning("HNSW build failed; the live shard is unchanged",
                            extra={"collection": name, "error": err.decode(errors="replace")[-500:]})
                return
            if not json.loads(out.decode().strip().splitlines()[-1]).get("optimized"):
                log.info("HNSW build: nothing to optimise", extra={"collection": name})
                return
            self._swap(name, work)
            await asyncio.to_thread(shutil.rmtree, self.path / f".trash-{name}", True)
            log.info("HNSW built off the serving path", extra={
                "collection": name, "seconds": round(time.monotonic() - started, 2),
                "journaled": len(self._journal.get(name) or ())})
        except asyncio.CancelledError:
            again = False
            raise
        except Exception:
            again = False
            log.exception("HNSW build failed; the live shard is unchanged", extra={"collection": name})
        finally:
            self._journal.pop(name, None)
            if work.exists():
                await asyncio.to_thread(shutil.rmtree, work, True)
            self._builds.pop(name, None)
            if again and self._pending.get(name, 0) >= self._build_after and name in self._shards:
                self._builds[name] = asyncio.get_running_loop().create_task(self._build(name))

    def _swap(self, name: str, built: Path) -> None:
        """Synchronous on purpose: no search or write runs between the close and the load."""
        live, old = self.path / name, self.path / f".old-{name}"
        journal = self._journal.get(name) or []
        shard = self._shards[name]
        shard.flush()
        shard.close()
        shutil.rmtree(old, ignore_errors=True)
        live.rename(old)
        try:
            built.rename(live)
            fresh = self._load(live)
            for operation in journal:
                fresh.update(operation)
            fresh.flush()
        except Exception:
            if live.exists():
                shutil.rmtree(live, ignore_errors=True)
            old.rename(live)
            self._shards[name] = self._load(live)
            raise
        # Until here ``.old-<name>`` holds every acknowledged write and a restart puts it back (``_repair``);
        # from here the built shard, with the journal applied and flushed, is the one.
        old.rename(self.path / f".trash-{name}")
        self._shards[name] = fresh
        self.builds += 1

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


def _repair(path: Path) -> None:
    """Leftovers of a build interrupted by a crash. A copy (``.build-``) and a replaced shard (``.trash-``) are
    discarded. ``.old-<name>`` means the swap did not finish: it is the shard with every acknowledged write
    (flushed before the swap began), while ``<name>``, if there, may lack the writes journaled during the build;
    so the old one is put back (the index is rebuilt later)."""
    for folder in path.iterdir():
        if folder.name.startswith((".build-", ".trash-")):
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.name.startswith(".old-"):
            live = path / folder.name.removeprefix(".old-")
            shutil.rmtree(live, ignore_errors=True)
            folder.rename(live)


def _optimize_folder(folder: str) -> None:
    """The child of ``EdgeIndex._build``: optimise a copy of a shard, print whether anything changed."""
    with contextlib.suppress(OSError):
        os.nice(10)  # the service it serves comes first
    shard = qe.EdgeShard.load(folder)
    try:
        changed = bool(shard.optimize())
        shard.flush()
    finally:
        shard.close()
    print(json.dumps({"optimized": changed}))  # noqa: T201


if __name__ == "__main__":
    _optimize_folder(sys.argv[1])
