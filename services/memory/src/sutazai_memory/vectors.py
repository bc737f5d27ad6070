"""The vector index behind one interface, two engines:

- **a Qdrant server** when ``QDRANT_URL`` is set, through ``qdrant-client`` (``qdrant_server.py``): HNSW and
  payload indexes built by the server in the background, several memory replicas can share it;
- **Qdrant Edge** otherwise (``edge_index.py``): Qdrant's own engine in process (``qdrant-edge-py``, Rust), one
  shard per collection in a folder under the data folder. It locks its folder, so one memory process per
  folder; to run several memory replicas, run a Qdrant server.

qdrant-client's own local mode is no longer used: it is pure Python, scores every point and evaluates every
filter in Python (p50 ~1.4 s at 2,000 memories on the shared machine, see ``bench/README.md``).

One collection per embedding model and dimension (``memory_<model>_<dims>``), created on first use, with a
named dense vector (cosine) and a named sparse vector with Qdrant's IDF modifier (the keyword signal, see
``keywords``). Memories and document chunks share it, told apart by the payload field ``kind``.

Hybrid search is one query: a ``Prefetch`` per signal and reciprocal rank fusion (k = 2, Qdrant's default).
The scope filter sits inside **every** ``Prefetch`` (a top-level filter on a fusion query is not applied to
the prefetches in qdrant-client's local mode, qdrant-client #1372; both engines here get it per prefetch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

DENSE = "dense"
KEYWORDS = "keywords"
# Payload fields every search filters on; both engines index them (keyword indexes).
INDEXED_FIELDS = ("user_id", "agent_id", "session_id", "run_id", "kind", "collection", "document_id", "tags")
RRF_K = 2  # Qdrant's default rank constant; the edge engine wants it explicitly
MODES = ("hybrid", "dense", "keyword")


@dataclass(frozen=True, slots=True)
class Sparse:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class Point:
    id: str
    dense: list[float]
    sparse: Sparse
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Match:
    """Every key equal to its value (``metadata.<key>`` for metadata), and every tag present."""
    conditions: Mapping[str, Any]
    tags: tuple[str, ...] = field(default=())


def collection_name(model: str, dimensions: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") or "model"
    return f"memory_{slug}_{dimensions}"


def match_filter(conditions: Mapping[str, Any], tags: Sequence[str] = ()) -> Match:
    return Match(dict(conditions), tuple(tags))


class VectorIndex(Protocol):
    """What memories and documents need of a vector engine; ``tests/test_vectors.py`` runs it on each."""

    @property
    def backend(self) -> str: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def exists(self, name: str) -> bool: ...
    async def ensure(self, name: str, dimensions: int) -> None: ...
    async def drop(self, name: str) -> None: ...
    async def upsert(self, name: str, points: Sequence[Point]) -> None: ...
    async def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None: ...
    async def delete(self, name: str, ids: Sequence[str]) -> None: ...
    async def delete_where(self, name: str, flt: Match) -> None: ...
    async def count(self, name: str, flt: Match) -> int: ...
    async def search(self, name: str, *, dense: list[float], sparse: Sparse, flt: Match, limit: int,
                     threshold: float | None = None, mode: str = "hybrid") -> list[Hit]: ...
    async def collections(self) -> list[tuple[str, int]]: ...


def open_index(url: str | None, path: Path, *, api_key: str | None = None, timeout_s: float = 10.0,
               index_after: int = 0, search_threads: int = 0) -> VectorIndex:
    """A Qdrant server when ``url`` is set, else the in-process edge engine in ``path`` (building HNSW in the
    background once ``index_after`` points were written since its last build; 0: never)."""
    if url:
        from sutazai_memory.qdrant_server import ServerIndex

        return ServerIndex.connect(url, api_key=api_key, timeout_s=timeout_s)
    from sutazai_memory.edge_index import EdgeIndex

    return EdgeIndex(path, build_after=index_after, search_threads=search_threads)
