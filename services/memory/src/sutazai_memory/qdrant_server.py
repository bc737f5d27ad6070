"""The vector index on a Qdrant server through ``qdrant-client`` (``QDRANT_URL``): the production path when
memory runs several replicas or holds many memories. The server builds HNSW and payload indexes in the
background; this adapter creates the payload indexes on the scoping fields with the collection.

``tests/test_vectors.py`` runs this adapter against a server when ``QDRANT_URL`` answers, and against
qdrant-client's local mode (the same client API, in process) always, so the adapter's calls are exercised
on every run even where no server exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from sutazai_memory.vectors import DENSE, INDEXED_FIELDS, KEYWORDS, RRF_K, Hit, Match, Point, Sparse

log = logging.getLogger(__name__)


def to_filter(flt: Match) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in flt.conditions.items()
    ]
    must.extend(models.FieldCondition(key="tags", match=models.MatchValue(value=tag)) for tag in flt.tags)
    return models.Filter(must=must)


def _sparse(s: Sparse) -> models.SparseVector:
    return models.SparseVector(indices=s.indices, values=s.values)


class ServerIndex:
    def __init__(self, client: AsyncQdrantClient, *, server: bool = True) -> None:
        self._client = client
        self._server = server  # False only for qdrant-client's local mode in tests (it has no payload indexes)
        self._known: set[str] = set()
        self._lock = asyncio.Lock()

    @classmethod
    def connect(cls, url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> ServerIndex:
        return cls(AsyncQdrantClient(url=url, api_key=api_key, timeout=max(1, int(timeout_s))))

    @property
    def backend(self) -> str:
        return "qdrant-server" if self._server else "qdrant-client-local"

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
        """Create the collection and its payload indexes unless it exists."""
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
            if self._server:  # qdrant-client's local mode warns and ignores payload indexes
                for name_ in INDEXED_FIELDS:
                    await self._client.create_payload_index(name, name_, models.PayloadSchemaType.KEYWORD)
            self._known.add(name)
            log.info("created collection", extra={"collection": name, "dimensions": dimensions})

    async def drop(self, name: str) -> None:
        self._known.discard(name)
        if await self._client.collection_exists(name):
            await self._client.delete_collection(name)

    async def upsert(self, name: str, points: Sequence[Point]) -> None:
        if not points:
            return
        await self._client.upsert(name, [
            models.PointStruct(id=p.id, vector={DENSE: p.dense, KEYWORDS: _sparse(p.sparse)}, payload=p.payload)
            for p in points
        ], wait=True)

    async def set_payload(self, name: str, point_id: str, payload: dict[str, Any]) -> None:
        await self._client.set_payload(name, payload, points=[point_id], wait=True)

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids and await self.exists(name):
            await self._client.delete(name, models.PointIdsList(points=list(ids)), wait=True)

    async def delete_where(self, name: str, flt: Match) -> None:
        if await self.exists(name):
            await self._client.delete(name, models.FilterSelector(filter=to_filter(flt)), wait=True)

    async def count(self, name: str, flt: Match) -> int:
        if not await self.exists(name):
            return 0
        return int((await self._client.count(name, count_filter=to_filter(flt), exact=True)).count)

    async def search(
        self, name: str, *, dense: list[float], sparse: Sparse, flt: Match, limit: int,
        threshold: float | None = None, mode: str = "hybrid",
    ) -> list[Hit]:
        if not await self.exists(name):
            return []
        qf = to_filter(flt)
        if mode == "dense":
            reply = await self._client.query_points(
                name, query=dense, using=DENSE, query_filter=qf, limit=limit, score_threshold=threshold,
                with_payload=True,
            )
        elif mode == "keyword":
            if not sparse.indices:
                return []
            reply = await self._client.query_points(
                name, query=_sparse(sparse), using=KEYWORDS, query_filter=qf, limit=limit, with_payload=True,
            )
        else:
            depth = max(limit * 4, 40)
            prefetch = [models.Prefetch(query=dense, using=DENSE, filter=qf, limit=depth, score_threshold=threshold)]
            if sparse.indices:
                prefetch.append(models.Prefetch(query=_sparse(sparse), using=KEYWORDS, filter=qf, limit=depth))
            reply = await self._client.query_points(
                name, prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)), limit=limit,
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
