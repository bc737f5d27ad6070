"""Memories: add (de-duplicated by content hash in the scope), search (hybrid), list, get, update
(re-embedded), delete and history. Postgres holds the record and the history, Qdrant the vectors.

Writes embed first and touch no store until the embeddings are in hand; then the Postgres rows are
written in one transaction that commits only after Qdrant has the points, so a failure on either side
leaves neither changed."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sutazai_runtime.identity import Identity

from sutazai_memory import graph_extraction, inference, keywords
from sutazai_memory.chat import ChatClient
from sutazai_memory.errors import Conflict, InvalidInput, MemoryServiceError, NotFound, refuse_nul
from sutazai_memory.graph.base import GraphStore
from sutazai_memory.memory_store import MemoryStore
from sutazai_memory.model import AddOutcome, Change, GraphOutcome, MemoryRecord, NewMemory, Scope, content_hash
from sutazai_memory.vectors import Hit, Point, VectorIndex, collection_name, match_filter

log = logging.getLogger(__name__)

MAX_CONTENT = 32_000
MAX_ITEMS = 100
MAX_ID = 128
MODES = ("hybrid", "dense", "keyword")
_FILTER_KEY = re.compile(rf"[\w-]{{1,{MAX_ID}}}")


def _check_scope(scope: Scope) -> None:
    for key, value in scope.conditions().items():
        if len(value) > MAX_ID:
            raise InvalidInput(f"{key}: at most {MAX_ID} characters")


def check_metadata_filter(metadata: dict[str, Any]) -> dict[str, Any]:
    """Exact-match filters on top-level metadata keys. Keys are words (letters, digits, ``_``, ``-``): the
    engine reads ``metadata.<key>`` as a JSON path, where spaces or brackets would not parse."""
    out = {}
    for key, value in metadata.items():
        if (not _FILTER_KEY.fullmatch(key) or not isinstance(value, str | int | bool) or isinstance(value, float)
                or (isinstance(value, int) and not -2**63 <= value < 2**63)):
            raise InvalidInput(f"metadata filter {key!r}: keys of 1 to {MAX_ID} letters, digits, _ or -; values "
                               "strings, 64-bit integers or booleans")
        out[f"metadata.{key}"] = value
    return out


class Memories:
    def __init__(self, store: MemoryStore, index: VectorIndex, chat: ChatClient,
                 graph: GraphStore | None = None) -> None:
        self.store = store
        self.index = index
        self.chat = chat
        self.graph = graph

    async def add(self, identity: Identity, items: Sequence[NewMemory], *, infer: bool = False,
                  extract_graph: bool = False) -> tuple[list[AddOutcome], int]:
        if not 1 <= len(items) <= MAX_ITEMS:
            raise InvalidInput(f"items: between 1 and {MAX_ITEMS}")
        for i, item in enumerate(items):
            if not item.content.strip():
                raise InvalidInput(f"items[{i}].content: must not be empty")
            if len(item.content) > MAX_CONTENT:
                raise InvalidInput(f"items[{i}].content: at most {MAX_CONTENT} characters")
            refuse_nul(f"items[{i}]", item.content, item.collection, item.document_id,
                       *item.scope.conditions().values())
            _check_scope(item.scope)
        outcomes: list[AddOutcome] = []
        model_calls = 0
        wanted: list[tuple[int, NewMemory]] = []
        if infer:
            for i, item in enumerate(items):
                model_calls += 1
                reply = await self.chat.complete(inference.SYSTEM, inference.prompt(item.content), identity)
                try:
                    facts = inference.parse_facts(reply)
                except inference.InvalidFacts as exc:
                    outcomes.append(AddOutcome(i, "skipped", reason=str(exc)))
                    continue
                if not facts:
                    outcomes.append(AddOutcome(i, "skipped", reason="the model found no facts"))
                for fact in facts:
                    wanted.append((i, NewMemory(fact, {**item.metadata, "inferred": True}, item.scope,
                                                item.collection, item.document_id)))
        else:
            wanted = list(enumerate(items))
        fresh: list[tuple[int, NewMemory, str]] = []
        for i, item in wanted:
            digest = content_hash(item.content)
            existing = await self.store.find_existing(identity.user_id, item.scope, item.collection, digest)
            if existing:
                outcomes.append(AddOutcome(i, "duplicate", existing))
            else:
                fresh.append((i, item, digest))
        if fresh:
            outcomes.extend(await self._insert(identity, fresh))
        if extract_graph:
            for outcome in outcomes:
                if outcome.event == "created" and outcome.memory is not None:
                    model_calls += 1
                    outcome.graph = await self._extract_graph(identity, outcome.memory)
        outcomes.sort(key=lambda o: o.item)
        return outcomes, model_calls

    async def _extract_graph(self, identity: Identity, memory: MemoryRecord) -> GraphOutcome:
        """One model call (JSON schema) for the memory's entities and relations, upserted in its scope. The
        memory is already stored: a model failure or an invalid reply is a skip with the reason, never an error."""
        if self.graph is None:
            return GraphOutcome(skipped="no graph store")
        try:
            reply = await self.chat.complete(graph_extraction.SYSTEM, graph_extraction.prompt(memory.content),
                                             identity, schema_json=graph_extraction.SCHEMA_JSON)
            found = graph_extraction.parse_graph(reply)
        except graph_extraction.InvalidGraph as exc:
            log.info("graph extraction skipped: %s", exc, extra={"memory_id": memory.id})
            return GraphOutcome(skipped=str(exc))
        except MemoryServiceError as exc:  # chat failed or refused: the memory stays, the graph waits
            return GraphOutcome(skipped=f"the model call failed: {exc}")
        ids: dict[str, str] = {}
        for name, type_ in found.entities:
            entity, _ = await self.graph.upsert_entity(identity.user_id, name, type_, {}, memory.scope)
            ids[name] = entity.id
        for source, target, type_ in found.relations:
            await self.graph.create_relation(identity.user_id, ids[source], ids[target], type_,
                                             {"memory_id": memory.id}, None, None)
        return GraphOutcome(len(found.entities), len(found.relations),
                            "" if found.entities else "the model found no entities")

    async def _insert(self, identity: Identity, fresh: list[tuple[int, NewMemory, str]]) -> list[AddOutcome]:
        embedded = await self.chat.embed([item.content for _, item, _ in fresh], identity)
        name = collection_name(embedded.model, embedded.dimensions)
        await self.index.ensure(name, embedded.dimensions)
        outcomes, points = [], []
        async with self.store.pool.acquire() as conn, conn.transaction():
            for (i, item, digest), vector in zip(fresh, embedded.vectors, strict=True):
                record = MemoryRecord(str(uuid.uuid4()), identity.user_id, item.content, item.metadata, item.scope,
                                      item.collection, item.document_id, digest)
                stored = await self.store.insert(conn, record, name)
                if stored is None:  # the same content arrived in this batch or concurrently
                    existing = await self.store.find_existing(identity.user_id, item.scope, item.collection, digest)
                    outcomes.append(AddOutcome(i, "duplicate", existing))
                    continue
                points.append(Point(stored.id, vector, keywords.document_vector(stored.content), stored.payload()))
                outcomes.append(AddOutcome(i, "created", stored))
            await self.index.upsert(name, points)
        return outcomes

    async def search(
        self, identity: Identity, query: str, *, limit: int = 10, threshold: float | None = None,
        scope: Scope | None = None, metadata: dict[str, Any] | None = None, collection: str = "", mode: str = "hybrid",
    ) -> list[tuple[MemoryRecord, float]]:
        if not query.strip():
            raise InvalidInput("query: must not be empty")
        if len(query) > MAX_CONTENT:
            raise InvalidInput(f"query: at most {MAX_CONTENT} characters")
        if not 1 <= limit <= 100:
            raise InvalidInput("limit: between 1 and 100")
        if mode not in MODES:
            raise InvalidInput(f"mode: one of {', '.join(MODES)}")
        refuse_nul("query, scope and collection", query, collection, *(scope or Scope()).conditions().values())
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise InvalidInput("threshold: between -1 and 1")
        scope = scope or Scope()
        _check_scope(scope)
        conditions = {"user_id": identity.user_id, "kind": "memory", "collection": collection,
                      **scope.conditions(), **check_metadata_filter(metadata or {})}
        embedded = await self.chat.embed([query], identity)
        hits = await self.index.search(
            collection_name(embedded.model, embedded.dimensions), dense=embedded.vectors[0],
            sparse=keywords.query_vector(query), flt=match_filter(conditions), limit=limit, threshold=threshold,
            mode=mode,
        )
        return [(MemoryRecord.from_payload(h.id, h.payload), h.score) for h in hits if _owned(h, identity)]

    async def list(self, identity: Identity, scope: Scope, collection: str | None, limit: int, offset: int
                   ) -> tuple[list[MemoryRecord], int]:
        if not 1 <= limit <= 100 or offset < 0:
            raise InvalidInput("limit: between 1 and 100; offset: at least 0")
        _check_scope(scope)
        return await self.store.list(identity.user_id, scope, collection, limit, offset)

    async def get(self, identity: Identity, memory_id: str) -> MemoryRecord:
        found = await self.store.get(identity.user_id, _uuid(memory_id))
        if found is None:
            raise NotFound(f"memory {memory_id} not found")
        return found[0]

    async def update(self, identity: Identity, memory_id: str, content: str | None,
                     metadata: dict[str, Any] | None) -> MemoryRecord:
        if content is None and metadata is None:
            raise InvalidInput("give content, metadata or both")
        if content is not None and (not content.strip() or len(content) > MAX_CONTENT):
            raise InvalidInput(f"content: 1 to {MAX_CONTENT} characters")
        refuse_nul("content", content or "")
        current = await self.get(identity, memory_id)
        vector = None
        if content is not None and content != current.content:
            embedded = await self.chat.embed([content], identity)
            vector = embedded.vectors[0]
        async with self.store.pool.acquire() as conn, conn.transaction():
            found = await self.store.get(identity.user_id, current.id, conn, for_update=True)
            if found is None:
                raise NotFound(f"memory {memory_id} not found")
            old, name = found
            new_content = content if content is not None else old.content
            digest = content_hash(new_content)
            if digest != old.content_hash and await self.store.find_existing(
                    identity.user_id, old.scope, old.collection, digest):
                raise Conflict("another memory in this scope already has this content")
            updated = await self.store.update(conn, old, new_content, digest,
                                              metadata if metadata is not None else old.metadata)
            if vector is not None:
                await self.index.upsert(name, [Point(updated.id, vector, keywords.document_vector(new_content),
                                                     updated.payload())])
            else:
                await self.index.set_payload(name, updated.id, updated.payload())
        return updated

    async def delete(self, identity: Identity, memory_id: str) -> None:
        async with self.store.pool.acquire() as conn, conn.transaction():
            found = await self.store.get(identity.user_id, _uuid(memory_id), conn, for_update=True)
            if found is None:
                raise NotFound(f"memory {memory_id} not found")
            record, name = found
            await self.store.delete(conn, record)
            await self.index.delete(name, [record.id])

    async def history(self, identity: Identity, memory_id: str) -> list[Change]:
        changes = await self.store.history(identity.user_id, _uuid(memory_id))
        if not changes:
            raise NotFound(f"memory {memory_id} not found")
        return changes

    async def collections(self, identity: Identity) -> list[tuple[str, int, int, str]]:
        """(name, count, dimensions, model collection) of the caller's logical collections."""
        dims = dict(await self.index.collections())
        rows = await self.store.collections(identity.user_id)
        return [(name, count, dims.get(vc, 0), vc) for name, count, vc in rows]


def _owned(hit: Hit, identity: Identity) -> bool:
    """Belt and braces under the filter: a point of another user is never answered."""
    if hit.payload.get("user_id") != identity.user_id:
        log.error("a search returned another user's point; dropped", extra={"point": hit.id})
        return False
    return True


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"memory {value} not found") from None


def now() -> datetime:
    return datetime.now(UTC)
