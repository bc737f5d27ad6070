"""Documents: upload (stored in Postgres at once, answered with status ``processing``), ingestion in the
background (extract, chunk, embed in batches, index; ``progress`` and ``status`` tell how far it got),
list, get, download, delete (its chunks too), search over chunks and a summary.

Chunks live in the vector index beside memories (payload ``kind: chunk``), with point ids derived from
the document id and chunk number, so an ingestion that restarts (the process died mid-way; documents
still ``processing`` are resumed at start) overwrites rather than doubles."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sutazai_runtime.identity import Identity

from sutazai_memory import keywords
from sutazai_memory.chat import ChatClient
from sutazai_memory.chunking import chunk
from sutazai_memory.document_events import DocumentEvents
from sutazai_memory.errors import InvalidInput, NotFound, refuse_nul
from sutazai_memory.extract import extract_text, sniff
from sutazai_memory.vectors import Point, VectorIndex, collection_name, match_filter

log = logging.getLogger(__name__)

MAX_TAGS = 32
_NAMESPACE = uuid.UUID("5b0c8a6e-52a4-4b55-9d4e-6f1c2f1d7a10")
_COLUMNS = ("id, owner_id, filename, content_type, size, tags, description, chunks, status, error, progress,"
            " sha256, vector_collection, created_at, updated_at, chunks_total")


@dataclass(slots=True)
class DocumentRecord:
    id: str
    owner_id: str
    filename: str
    content_type: str
    size: int
    tags: list[str]
    description: str
    chunks: int
    status: str
    error: str
    progress: float
    sha256: str
    vector_collection: str
    created_at: datetime
    updated_at: datetime
    chunks_total: int = 0


def _record(row: asyncpg.Record) -> DocumentRecord:
    return DocumentRecord(str(row["id"]), row["owner_id"], row["filename"], row["content_type"], row["size"],
                          list(row["tags"]), row["description"], row["chunks"], row["status"], row["error"],
                          float(row["progress"]), row["sha256"], row["vector_collection"], row["created_at"],
                          row["updated_at"], row["chunks_total"])


def chunk_point_id(document_id: str, index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{document_id}:{index}"))


@dataclass
class Documents:
    pool: asyncpg.Pool
    index: VectorIndex
    chat: ChatClient
    max_bytes: int
    chunk_tokens: int = 180
    chunk_overlap: int = 30
    embed_batch: int = 64
    concurrency: int = 1
    schema: str = "memory"
    events: DocumentEvents = field(default_factory=lambda: DocumentEvents(None))
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None

    # -- writes ------------------------------------------------------------------------------------------
    async def upload(self, identity: Identity, filename: str, declared_type: str, content: bytes,
                     tags: list[str], description: str) -> DocumentRecord:
        if not content:
            raise InvalidInput("file: empty")
        if len(content) > self.max_bytes:
            raise InvalidInput(f"file: {len(content)} bytes, over the limit of {self.max_bytes}")
        refuse_nul("filename, content_type, tags and description", filename, declared_type, description, *tags)
        filename = (filename or "document").strip()[:255]
        tags = sorted({t.strip() for t in tags if t.strip()})
        if len(tags) > MAX_TAGS or any(len(t) > 64 for t in tags):
            raise InvalidInput(f"tags: at most {MAX_TAGS}, each at most 64 characters")
        if len(description) > 4000:
            raise InvalidInput("description: at most 4000 characters")
        content_type = sniff(content, filename, declared_type)
        row = await self.pool.fetchrow(
            f"INSERT INTO {self.schema}.documents (id, owner_id, filename, content_type, size, tags, description,"
            f" content, sha256) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING {_COLUMNS}",
            uuid.uuid4(), identity.user_id, filename, content_type, len(content), tags, description, content,
            hashlib.sha256(content).hexdigest(),
        )
        record = _record(row)
        self._start(record.id, identity.user_id)
        return record

    def _start(self, document_id: str, owner_id: str) -> None:
        task = asyncio.create_task(self._ingest(document_id, owner_id), name=f"ingest-{document_id}")
        self._tasks[document_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(document_id, None))

    async def resume(self) -> int:
        """Start ingestion again for documents left ``processing`` (the process stopped mid-way)."""
        rows = await self.pool.fetch(f"SELECT id, owner_id FROM {self.schema}.documents WHERE status='processing'")
        for row in rows:
            if str(row["id"]) not in self._tasks:
                self._start(str(row["id"]), row["owner_id"])
        return len(rows)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _ingest(self, document_id: str, owner_id: str) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        identity = Identity(owner_id)
        async with self._slots:
            try:
                row = await self.pool.fetchrow(
                    f"SELECT content, content_type FROM {self.schema}.documents WHERE id=$1", document_id)
                if row is None:
                    return
                text = await asyncio.to_thread(extract_text, row["content"], row["content_type"])
                pieces = await asyncio.to_thread(chunk, text, row["content_type"], tokens=self.chunk_tokens,
                                                 overlap=self.chunk_overlap)
                if not pieces:
                    raise ValueError("the document has no text")
                await self.pool.execute(
                    f"UPDATE {self.schema}.documents SET chunks_total=$2, chunks=0, progress=0, updated_at=now()"
                    " WHERE id=$1", document_id, len(pieces))
                await self.events.progress(document_id, owner_id, "processing", 0, len(pieces))
                meta = await self.pool.fetchrow(f"SELECT tags, filename FROM {self.schema}.documents WHERE id=$1",
                                                document_id)
                if meta is None:
                    return
                name = ""
                for start in range(0, len(pieces), self.embed_batch):
                    batch = pieces[start:start + self.embed_batch]
                    embedded = await self.chat.embed(batch, identity)
                    name = collection_name(embedded.model, embedded.dimensions)
                    await self.index.ensure(name, embedded.dimensions)
                    await self.index.upsert(name, [
                        Point(chunk_point_id(document_id, start + i), vector, keywords.document_vector(text_),
                              {"kind": "chunk", "user_id": owner_id, "document_id": document_id,
                               "chunk_index": start + i, "content": text_, "tags": list(meta["tags"]),
                               "filename": meta["filename"]})
                        for i, (text_, vector) in enumerate(zip(batch, embedded.vectors, strict=True))
                    ])
                    done = start + len(batch)
                    await self.pool.execute(
                        f"UPDATE {self.schema}.documents SET progress=$2, chunks=$3, vector_collection=$4,"
                        " updated_at=now() WHERE id=$1", document_id, done / len(pieces), done, name)
                    log.info("document progress", extra={"document_id": document_id, "chunks": done,
                                                         "total": len(pieces)})
                    await self.events.progress(document_id, owner_id, "processing", done, len(pieces))
                await self.pool.execute(
                    f"UPDATE {self.schema}.documents SET status='ready', progress=1, updated_at=now() WHERE id=$1",
                    document_id)
                log.info("document ready", extra={"document_id": document_id, "chunks": len(pieces)})
                await self.events.progress(document_id, owner_id, "ready", len(pieces), len(pieces))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("document failed", extra={"document_id": document_id, "error": str(exc)})
                await self.pool.execute(
                    f"UPDATE {self.schema}.documents SET status='failed', error=$2, updated_at=now() WHERE id=$1",
                    document_id, str(exc)[:2000])
                await self.events.progress(document_id, owner_id, "failed", 0, 0, str(exc)[:2000])

    async def delete(self, identity: Identity, document_id: str) -> None:
        record = await self.get(identity, document_id)
        task = self._tasks.get(record.id)
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        doc_filter = match_filter({"user_id": identity.user_id, "kind": "chunk", "document_id": record.id})
        for name, _ in await self.index.collections():
            await self.index.delete_where(name, doc_filter)
        await self.pool.execute(f"DELETE FROM {self.schema}.documents WHERE id=$1 AND owner_id=$2", record.id,
                                identity.user_id)

    # -- reads -------------------------------------------------------------------------------------------
    async def get(self, identity: Identity, document_id: str) -> DocumentRecord:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM {self.schema}.documents WHERE id=$1 AND owner_id=$2",
            _uuid(document_id), identity.user_id)
        if row is None:
            raise NotFound(f"document {document_id} not found")
        return _record(row)

    async def content(self, identity: Identity, document_id: str) -> bytes:
        value = await self.pool.fetchval(
            f"SELECT content FROM {self.schema}.documents WHERE id=$1 AND owner_id=$2",
            _uuid(document_id), identity.user_id)
        if value is None:
            raise NotFound(f"document {document_id} not found")
        return bytes(value)

    async def list(self, identity: Identity, search: str, limit: int, offset: int) -> tuple[list[DocumentRecord], int]:
        if not 1 <= limit <= 100 or offset < 0:
            raise InvalidInput("limit: between 1 and 100; offset: at least 0")
        args: list[Any] = [identity.user_id]
        where = "owner_id=$1"
        if search.strip():
            args.append("%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            where += " AND (filename ILIKE $2 OR description ILIKE $2 OR array_to_string(tags, ' ') ILIKE $2)"
        total = await self.pool.fetchval(f"SELECT count(*) FROM {self.schema}.documents WHERE {where}", *args)
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self.schema}.documents WHERE {where} ORDER BY created_at DESC, id"
            f" LIMIT {int(limit)} OFFSET {int(offset)}", *args)
        return [_record(r) for r in rows], int(total)

    async def search(self, identity: Identity, query: str, limit: int, tags: list[str]
                     ) -> list[tuple[DocumentRecord, str, int, float]]:
        if not query.strip():
            raise InvalidInput("query: must not be empty")
        if not 1 <= limit <= 100:
            raise InvalidInput("limit: between 1 and 100")
        refuse_nul("query and tags", query, *tags)
        embedded = await self.chat.embed([query], identity)
        hits = await self.index.search(
            collection_name(embedded.model, embedded.dimensions), dense=embedded.vectors[0],
            sparse=keywords.query_vector(query),
            flt=match_filter({"user_id": identity.user_id, "kind": "chunk"}, tags), limit=limit)
        hits = [h for h in hits if h.payload.get("user_id") == identity.user_id]
        ids = sorted({h.payload["document_id"] for h in hits})
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self.schema}.documents WHERE owner_id=$1 AND id = ANY($2::uuid[])",
            identity.user_id, ids) if ids else []
        docs = {str(r["id"]): _record(r) for r in rows}
        return [(docs[h.payload["document_id"]], h.payload.get("content", ""), int(h.payload.get("chunk_index", 0)),
                 h.score) for h in hits if h.payload["document_id"] in docs]

    async def stats(self, identity: Identity) -> dict[str, Any]:
        rows = await self.pool.fetch(
            f"SELECT status, content_type, count(*) AS n, sum(size) AS size, sum(chunks) AS chunks"
            f" FROM {self.schema}.documents WHERE owner_id=$1 GROUP BY status, content_type", identity.user_id)
        by_status: dict[str, int] = {}
        by_type: dict[str, int] = {}
        for r in rows:
            by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
            by_type[r["content_type"]] = by_type.get(r["content_type"], 0) + r["n"]
        return {"total_documents": sum(r["n"] for r in rows), "total_size": int(sum(r["size"] or 0 for r in rows)),
                "total_chunks": int(sum(r["chunks"] or 0 for r in rows)), "by_status": by_status,
                "by_content_type": by_type}


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"document {value} not found") from None
