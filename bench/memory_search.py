"""Memory: ingestion (memories/s, document chunks/s) and search latency through the gateway, beside the same
search made directly with ``qdrant-client`` in the same run.

    .venv/bin/python bench/memory_search.py [--memories 20000] [--queries 100] [--rounds 3]

Starts the platform on free ports in a temporary home (``_platform.platform_stack``), stores ``--memories``
generated memories for the admin through ``POST /api/v1/memory`` (batches of 100), uploads one generated
Markdown document and waits for it to be ``ready``, then measures ``--queries`` searches (one in flight) per
round through ``POST /api/v1/memory/search`` and, alternating with it, the same hybrid query (the same
query vectors, sparse vector and scope filter) made with ``qdrant-client`` on a copy of the memory
service's local Qdrant folder (local mode locks its folder to one process, so the direct client cannot open
the live one). The embedding of each query alone (``POST /v1/embeddings`` through the gateway) is measured
too, to show what the gateway path spends on it. Prints a table; writes ``bench/results/memory_search.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _platform
import aiohttp
import asyncpg
from _platform import Platform, platform_stack, ratio, run_benchmark, say
from qdrant_client import AsyncQdrantClient
from sutazai_memory import keywords
from sutazai_memory.vectors import VectorIndex, match_filter

RESULTS = Path(__file__).with_name("results") / "memory_search.json"
SUBJECTS = ["invoice", "order", "ticket", "incident", "backup", "deploy", "meeting", "customer", "contract",
            "server", "laptop", "policy", "release", "report", "account", "payment", "shipment", "budget"]
VERBS = ["was approved", "was delayed", "failed", "was moved to Friday", "needs a review", "was cancelled",
         "was paid", "was escalated", "is on hold", "was archived", "was renewed", "was migrated"]
PLACES = ["in Lisbon", "in Berlin", "for the Nordic team", "by finance", "in the staging cluster", "for ACME",
          "after the audit", "during the outage", "before the launch", "in the warehouse"]


def text(i: int, rng: random.Random) -> str:
    return (f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(['REF', 'ID', 'NO'])}-{i:06d} "
            f"{rng.choice(VERBS)} {rng.choice(PLACES)}.")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def post(session: aiohttp.ClientSession, url: str, key: str, body: Any) -> Any:
    async with session.post(url, json=body, headers={"X-API-Key": key}) as response:
        if response.status >= 300:
            raise RuntimeError(f"{url}: {response.status} {await response.text()}")
        return await response.json()


async def measure(p: Platform, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    timeout = aiohttp.ClientTimeout(total=600)
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends (a slow direct search sits in between).
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(keepalive_timeout=3)) as s:
        say(f"storing {args.memories} memories ...")
        started = time.perf_counter()
        for start in range(0, args.memories, 100):
            items = [{"content": text(i, rng)} for i in range(start, min(start + 100, args.memories))]
            await post(s, f"{p.url}/api/v1/memory", p.admin_key, {"memories": items})
        memories_s = args.memories / (time.perf_counter() - started)

        doc = "\n\n".join(f"## Section {i}\n\n" + " ".join(text(10_000_000 + i * 10 + j, rng) for j in range(12))
                          for i in range(args.doc_sections))
        started = time.perf_counter()
        async with s.post(f"{p.url}/api/v1/documents", json={"filename": "bench.md", "content": doc},
                          headers={"X-API-Key": p.admin_key}) as response:
            document = await response.json()
        while document["status"] == "processing":
            await asyncio.sleep(0.2)
            async with s.get(f"{p.url}/api/v1/documents/{document['id']}",
                             headers={"X-API-Key": p.admin_key}) as response:
                document = await response.json()
        chunks_s = document["chunks"] / (time.perf_counter() - started)
        say(f"document {document['status']}: {document['chunks']} chunks at {chunks_s:.1f}/s")

        queries = [text(rng.randrange(args.memories), rng) if k % 2 else f"ID-{rng.randrange(args.memories):06d}"
                   for k in range(args.queries)]
        embedded = await post(s, f"{p.url}/v1/embeddings", p.admin_key, {"input": queries,
                                                                        "model": "all-MiniLM-L6-v2"})
        vectors = [d["embedding"] for d in embedded["data"]]
        me = await (await s.get(f"{p.url}/api/v1/auth/me", headers={"X-API-Key": p.admin_key})).json()

        copy = Path(tempfile.mkdtemp(prefix="qdrant-copy-"))
        shutil.copytree(p.home / "memory" / "qdrant", copy / "qdrant")
        direct = VectorIndex(AsyncQdrantClient(path=str(copy / "qdrant")), server=False)
        name = next(n for n, _ in await direct.collections())
        flt = match_filter({"user_id": me["id"], "kind": "memory", "collection": ""})
        gateway_ms: list[float] = []
        direct_ms: list[float] = []
        embed_ms: list[float] = []
        for round_ in range(args.rounds):
            say(f"round {round_ + 1}/{args.rounds}")
            for q, vector in zip(queries, vectors, strict=True):
                t = time.perf_counter()
                await post(s, f"{p.url}/api/v1/memory/search", p.admin_key, {"query": q, "limit": 10})
                gateway_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await direct.search(name, dense=vector, sparse=keywords.query_vector(q), flt=flt, limit=10)
                direct_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await post(s, f"{p.url}/v1/embeddings", p.admin_key, {"input": q, "model": "all-MiniLM-L6-v2"})
                embed_ms.append((time.perf_counter() - t) * 1000)
        await direct.close()
        shutil.rmtree(copy, ignore_errors=True)
    return {
        "memories": args.memories, "queries_per_round": args.queries, "rounds": args.rounds,
        "ingest_memories_per_s": memories_s, "document_chunks": document["chunks"], "chunks_per_s": chunks_s,
        "gateway": {"p50_ms": statistics.median(gateway_ms), "p99_ms": pct(gateway_ms, 0.99)},
        "direct_qdrant_client": {"p50_ms": statistics.median(direct_ms), "p99_ms": pct(direct_ms, 0.99)},
        "embedding_alone": {"p50_ms": statistics.median(embed_ms), "p99_ms": pct(embed_ms, 0.99)},
    }


def benchmark(args: argparse.Namespace) -> None:
    # A database of its own: the memory records must match the fresh Qdrant folder of the temporary home.
    database = f"sutazai_bench_memory_{os.getpid()}"
    try:
        with platform_stack({"SUTAZAI_DATABASE_NAME": database}) as p:
            result = asyncio.run(measure(p, args))
    finally:
        asyncio.run(drop_database(database))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    g, d, e = result["gateway"], result["direct_qdrant_client"], result["embedding_alone"]
    print(f"memories stored: {result['memories']} at {result['ingest_memories_per_s']:.1f}/s; "  # noqa: T201
          f"document: {result['document_chunks']} chunks at {result['chunks_per_s']:.1f} chunks/s")
    print(f"{'search (hybrid, limit 10)':32} {'p50 ms':>8} {'p99 ms':>8}")  # noqa: T201
    for label, row in (("gateway POST /memory/search", g), ("qdrant-client direct", d),
                       ("embedding alone (gateway)", e)):
        print(f"{label:32} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f}")  # noqa: T201
    print(f"gateway path adds p50 {g['p50_ms'] - d['p50_ms']:.1f} ms "  # noqa: T201
          f"(ratio {ratio(g['p50_ms'], d['p50_ms']):.2f})")


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                                 timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--doc-sections", type=int, default=60)
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds the platform may take to start")
    args = parser.parse_args()
    _platform.STACK_START_TIMEOUT_S = args.start_timeout  # a loaded shared machine starts slower
    sys.exit(run_benchmark(benchmark, args))


if __name__ == "__main__":
    main()
