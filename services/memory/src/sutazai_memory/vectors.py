"""The vector index: Qdrant through ``qdrant-client``, a server when ``QDRANT_URL`` is set, else local
mode on a folder (which takes a file lock: one process per folder; local mode searches by brute force
and warns above 20,000 points, so scale with a server).

One collection per embedding model and dimension (``memory_<model>_<dims>``), created on first use, with
a named dense vector (cosine) and a named sparse vector with Qdrant's IDF modifier (the keyword signal,
see ``keywords``). Memories and document chunks share it, told apart by the payload field ``kind``.

Hybrid search is one Query API call: a ``Prefetch`` per signal and reciprocal rank fusion. The scope
filter sits inside **every** ``Prefetch``: a top-level filter on a fusion query is ignored in local mode
(qdrant-client #1372), which would leak other users' points into the fused list.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, models

log = logging.getLogger(__name__)

DENSE = "dense"
KEYWORDS = "keywords"
# Payload fields every search filters on; a Qdrant server indexes them (local mode has no indexes).
INDEXED_FIELDS = ("user_id", "agent_id", "session_id", "run_id", "kind", "collection", "document_id", "tags")
Mode = str  # "hybrid" | "dense" | "keyword"


@dataclass(frozen=True, slots=True)
class Point:
    id: str
    dense: list[float]
    sparse: models.SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


def collection_name(model: str, dimensions: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_") or "model"
    return f"memory_{slug}_{dimensions}"


def match_filter(conditions: Mapping[str, Any], tags: Sequence[str] = ()) -> models.Filter:
    """Every key equal to its value (``metadata.<key>`` for metadata), and every tag present."""
    must: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in conditions.items()
    ]
    must.extend(models.FieldCondition(key="tags", match=models.MatchValue(value=tag)) for tag in tags)
    return models.Filter(must=must)


class VectorIndex:
    def __init__(self, client: AsyncQdrantClient, *, server: bool) -> None:
        self._client = client
        self.server = server
        self._known: set[str] = set()
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, url: str | None, path: Path, *, api_key: str | None = None, timeout_s: float = 10.0) -> VectorIndex:
        if url:
            return cls(AsyncQdrantClient(url=url, api_key=api_key, timeout=int(timeout_s)), server=True)
        path.mkdir(parents=True, exist_ok=True)
        return cls(AsyncQdrantClient(path=str(path)), server=False)

    @property
    def backend(self) -> str:
        return "qdrant-server" if self.server else "qdrant-local"

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self._client.get_collections()

    async def exists(self, name: str) -> bool:
        if name in self._known:
            return True
        if await self._client.collection_exists(name):
            self._known.add(name)
            return True
        return False

    async def ensure(self, name: str, dimensions: int) -> None:
        """Create the collection (and, on a server, its payload indexes) unless it exists."""
        if name in self._known:
            return
        async with self._lock:
            if await self.exists(name):
                return
            try:
                await self._client.create_collection(
                    name,
                    vectors_config={DENSE: models.VectorParams(size=dimensions, distance=models.Distance.COSINE)},
                    sparse_vectors_config={KEYWORDS: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            except Exception:
                # Another replica created it first (a server answers 409); anything else re-raises below.
                if not await self._client.collection_exists(name):
                    raise
            if self.server:  # local mode has no payload indexes (it warns and ignores them)
                for field in INDEXED_FIELDS:
                    await self._client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
            self._known.add(name)
            log.info("created collection", extra={"collection": name, "dimensions": dimensions})

    async def upsert(self, name: str, points: Sequence[Point]) -> None:
        if not points:
            return
        await self._client.upsert(name, [
            models.PointStruct(id=p.id, vector={DENSE: p.dense, KEYWORDS: p.sparse}, payload=p.payload)
            for p in points
        ], wait=True)

    async def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        await self._client.set_payload(name, payload, points=[point_id], wait=True)

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids and await self.exists(name):
            await self._client.delete(name, models.PointIdsList(points=list(ids)), wait=True)

    async def delete_where(self, name: str, flt: models.Filter) -> None:
        if await self.exists(name):
            await self._client.delete(name, models.FilterSelector(filter=flt), wait=True)

    async def count(self, name: str, flt: models.Filter) -> int:
        if not await self.exists(name):
            return 0
        return int((await self._client.count(name, count_filter=flt, exact=True)).count)

    async def search(
        self, name: str, *, dense: list[float], sparse: models.SparseVector, flt: models.Filter, limit: int,
        threshold: float | None = None, mode: Mode = "hybrid",
    ) -> list[Hit]:
        if not await self.exists(name):
            return []
        if mode == "dense":
            reply = await self._client.query_points(
                name, query=dense, using=DENSE, query_filter=flt, limit=limit, score_threshold=threshold,
                with_payload=True,
            )
        elif mode == "keyword":
            if not sparse.indices:
                return []
            reply = await self._client.query_points(
                name, query=sparse, using=KEYWORDS, query_filter=flt, limit=limit, with_payload=True,
            )
        else:
            depth = max(limit * 4, 40)
            prefetch = [models.Prefetch(query=dense, using=DENSE, filter=flt, limit=depth, score_threshold=threshold)]
            if sparse.indices:
                prefetch.append(models.Prefetch(query=sparse, using=KEYWORDS, filter=flt, limit=depth))
            reply = await self._client.query_points(
                name, prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=limit,
                with_payload=True,
            )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in reply.points]

    async def collections(self) -> list[tuple[str, int]]:
        """Every collection of this service with its dense dimension."""
        out = []
        for c in (await self._client.get_collections()).collections:
            if not c.name.startswith("memory_"):
                continue
            info = await self._client.get_collection(c.name)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else 0
            out.append((c.name, int(size)))
        return out
