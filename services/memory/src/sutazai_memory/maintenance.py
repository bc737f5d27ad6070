"""Maintenance of the vector index, which is derived data: PostgreSQL holds every memory and document.

- ``reindex`` rebuilds the index from PostgreSQL: every collection of this service is dropped, every memory
  re-embedded (through chat, in batches) and written with its payload, every document ingested again
  (status ``processing`` until its chunks are back). Use it after losing or moving the vector folder, when
  switching between the edge engine and a Qdrant server, or to change the embedding model.
- ``optimize`` (edge engine only) builds HNSW and merges segments; it blocks for its whole run.

With the edge engine these run while the memory service is stopped: the engine locks its folder, and a
second process is refused at once (``VectorFolderLocked``). Against a Qdrant server they can run beside the
service; searches find fewer memories until the rebuild is done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sutazai_runtime.identity import Identity

from sutazai_memory import keywords
from sutazai_memory.memory_store import _COLUMNS, _record
from sutazai_memory.vectors import Point, collection_name
from sutazai_memory.wiring import Built

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reindexed:
    memories: int
    documents: int
    collections: list[str]
    seconds: float


async def reindex(built: Built, *, schema: str = "memory", batch: int = 64) -> Reindexed:
    started = time.monotonic()
    memories = built.servicer.memories
    documents = built.servicer.documents
    pool = memories.store.pool
    for name, _ in await built.index.collections():
        await built.index.drop(name)
        log.info("dropped collection", extra={"collection": name})
    written: set[str] = set()
    count = 0
    last_id = "00000000-0000-0000-0000-000000000000"
    while True:  # keyset pages, per user within a page (embeddings are asked in the owner's name)
        rows = await pool.fetch(f"SELECT {_COLUMNS} FROM {schema}.memories WHERE id > $1::uuid ORDER BY id LIMIT $2",
                                last_id, batch)
        if not rows:
            break
        last_id = str(rows[-1]["id"])
        records = [_record(r) for r in rows]
        by_user: dict[str, list] = {}
        for record in records:
            by_user.setdefault(record.user_id, []).append(record)
        for user_id, group in by_user.items():
            embedded = await memories.chat.embed([r.content for r in group], Identity(user_id))
            name = collection_name(embedded.model, embedded.dimensions)
            await built.index.ensure(name, embedded.dimensions)
            await built.index.upsert(name, [Point(r.id, v, keywords.document_vector(r.content), r.payload())
                                            for r, v in zip(group, embedded.vectors, strict=True)])
            await pool.execute(f"UPDATE {schema}.memories SET vector_collection=$2 WHERE id = ANY($1::uuid[])",
                               [r.id for r in group], name)
            written.add(name)
        count += len(records)
        log.info("reindexed memories", extra={"memories": count})
    docs = await pool.execute(
        f"UPDATE {schema}.documents SET status='processing', chunks=0, progress=0, error='', updated_at=now()")
    await documents.resume()
    await documents.wait_idle()
    return Reindexed(count, int(docs.split()[-1]), sorted(written | {n for n, _ in await built.index.collections()}),
                     time.monotonic() - started)
