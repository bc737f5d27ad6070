"""Retrieval quality on a labelled set kept in the repository (``data/passages.tsv``: 205 passages,
``data/queries.tsv``: 50 queries written for it: exact identifiers, paraphrases and rare words, each with
the passage that answers it). Recall@5 of hybrid search must be at least 0.9 and higher than dense
search alone, on the real embedding model."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from sutazai.memory.v1 import memory_pb2 as m

DATA = Path(__file__).with_name("data")
log = logging.getLogger(__name__)


def load() -> tuple[dict[str, str], list[tuple[str, set[str], str]]]:
    passages = dict(line.split("\t", 1) for line in (DATA / "passages.tsv").read_text().splitlines() if line)
    queries = []
    for line in (DATA / "queries.tsv").read_text().splitlines():
        if line:
            query, relevant, kind = line.split("\t")
            queries.append((query, set(relevant.split(",")), kind))
    return passages, queries


async def recall_at(client: Any, ids: dict[str, str], queries: list[tuple[str, set[str], str]], mode: str,
                    k: int = 5) -> tuple[float, dict[str, float], list[str]]:
    hits, by_kind, totals, misses = 0, {}, {}, []
    for query, relevant, kind in queries:
        reply = await client.SearchMemories(m.SearchMemoriesRequest(query=query, limit=k, mode=mode))
        found = {ids[r.memory.id] for r in reply.results}
        ok = bool(found & relevant)
        hits += ok
        by_kind[kind] = by_kind.get(kind, 0) + ok
        totals[kind] = totals.get(kind, 0) + 1
        if not ok:
            misses.append(query)
    return hits / len(queries), {k_: by_kind[k_] / totals[k_] for k_ in totals}, misses


async def test_hybrid_recall_at_5_is_at_least_0_9_and_beats_dense(memory: Any) -> None:
    passages, queries = load()
    assert len(passages) >= 200 and len(queries) >= 40
    client = memory.client(f"retrieval-{uuid.uuid4().hex[:8]}")
    keys = list(passages)
    ids: dict[str, str] = {}
    for start in range(0, len(keys), 100):
        batch = keys[start:start + 100]
        reply = await client.AddMemories(m.AddMemoriesRequest(
            items=[m.MemoryInput(content=passages[k]) for k in batch]))
        assert all(r.event == "created" for r in reply.results)
        ids.update({r.memory.id: batch[r.item] for r in reply.results})
    hybrid, hybrid_kinds, hybrid_misses = await recall_at(client, ids, queries, "hybrid")
    dense, dense_kinds, dense_misses = await recall_at(client, ids, queries, "dense")
    keyword, _, _ = await recall_at(client, ids, queries, "keyword")
    report = (f"recall@5 hybrid {hybrid:.3f} {hybrid_kinds} misses {hybrid_misses}; dense {dense:.3f} "
              f"{dense_kinds} misses {dense_misses}; keyword {keyword:.3f}")
    print(report)  # noqa: T201 - the numbers are the point of this test; -s shows them
    assert hybrid >= 0.9, report
    assert hybrid > dense, report
