"""Memory: ingestion (memories/s, document chunks/s) and search latency through the gateway at 20,000 memories,
beside the same search made directly on the same engine in the same run.

    .venv/bin/python bench/memory_search.py [--memories 20000] [--queries 100] [--rounds 3]

Starts the platform on free ports in a temporary home (``_platform.platform_stack``), stores ``--memories``
generated memories for the admin through ``POST /api/v1/memory`` (batches of 100), uploads one generated
Markdown document and waits for it to be ``ready``, then per round measures ``--queries`` searches (one in
flight, a new set of queries each round), each made three ways, in turn:

- ``gateway``: ``POST /api/v1/memory/search`` (hybrid, limit 10): gateway -> memory -> chat -> embeddings server,
  then the engine;
- ``direct``: what a program holding the engine would do itself: the query embedded by the same embeddings
  server (its ``/v1/embeddings``, HTTP) and the same hybrid query (same sparse vector, same scope filter in
  every prefetch, RRF) on the same engine: Qdrant Edge on a copy of the memory service's shard folder (the
  live one is locked by the service), or the Qdrant server when ``QDRANT_URL`` is set (through
  ``qdrant-client``);
- ``engine alone``: the engine part of ``direct`` (the query vector in hand);
- and, to say where the path's time goes, the same query sent straight to the memory service's gRPC port
  (``SearchMemories``, the proof the gateway would attach) and to the chat service's (``Embed``).

Prints a table with the machine's load average; writes ``bench/results/memory_search.json``.
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
import grpc
from _platform import Platform, platform_stack, ratio, run_benchmark, say, signed_metadata
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai_memory import keywords
from sutazai_memory.vectors import VectorIndex, match_filter, open_index

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
    load_before = os.getloadavg()
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends.
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(keepalive_timeout=3)) as s:
        say(f"storing {args.memories} memories ...")
        started = time.perf_counter()
        for start in range(0, args.memories, 100):
            items = [{"content": text(i, rng)} for i in range(start, min(start + 100, args.memories))]
            await post(s, f"{p.url}/api/v1/memory", p.admin_key, {"memories": items})
            if start and start % 2000 == 0:
                say(f"  {start} stored ({start / (time.perf_counter() - started):.0f}/s)")
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

        me = await (await s.get(f"{p.url}/api/v1/auth/me", headers={"X-API-Key": p.admin_key})).json()
        state = json.loads((p.home / "run" / "stack.json").read_text())
        embeddings_url = state["infra"]["embeddings"]["url"].rstrip("/")
        direct, copy = await open_direct(p)
        hnsw = bool(copy and any("hnsw" in f.name for f in (copy / "vectors").rglob("*")))
        name = next(n for n, _ in await direct.collections())
        flt = match_filter({"user_id": me["id"], "kind": "memory", "collection": ""})
        gateway_ms: list[float] = []
        direct_ms: list[float] = []
        engine_ms: list[float] = []
        embed_ms: list[float] = []
        memory_ms: list[float] = []
        chat_ms: list[float] = []
        identity = signed_metadata(p.home, me["id"], admin=True)
        memory_channel = grpc.aio.insecure_channel(f"127.0.0.1:{state['services']['memory']['port']}")
        chat_channel = grpc.aio.insecure_channel(f"127.0.0.1:{state['services']['chat']['port']}")
        memory_stub = memory_pb2_grpc.MemoryServiceStub(memory_channel)
        chat_stub = chat_pb2_grpc.ChatServiceStub(chat_channel)
        for round_ in range(args.rounds):
            say(f"round {round_ + 1}/{args.rounds}")
            queries = [text(rng.randrange(args.memories), rng) if k % 2 else f"ID-{rng.randrange(args.memories):06d}"
                       for k in range(args.queries)]
            for q in queries:
                t = time.perf_counter()
                found = await post(s, f"{p.url}/api/v1/memory/search", p.admin_key, {"query": q, "limit": 10})
                gateway_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                async with s.post(f"{embeddings_url}/v1/embeddings",
                                  json={"input": [q], "model": "all-MiniLM-L6-v2"}) as response:
                    vector = (await response.json())["data"][0]["embedding"]
                t_embedded = time.perf_counter()
                hits = await direct.search(name, dense=vector, sparse=keywords.query_vector(q), flt=flt, limit=10)
                done = time.perf_counter()
                direct_ms.append((done - t) * 1000)
                engine_ms.append((done - t_embedded) * 1000)
                embed_ms.append((t_embedded - t) * 1000)
                t = time.perf_counter()
                reply = await memory_stub.SearchMemories(
                    memory_pb2.SearchMemoriesRequest(query=q, limit=10, mode="hybrid"), metadata=identity, timeout=10)
                memory_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await chat_stub.Embed(chat_pb2.EmbedRequest(inputs=[q]), metadata=identity, timeout=10)
                chat_ms.append((time.perf_counter() - t) * 1000)
                if not hits or not found["results"] or not reply.results:
                    raise RuntimeError(f"no hit for {q!r}")
        await direct.close()
        await memory_channel.close()
        await chat_channel.close()
        if copy:
            shutil.rmtree(copy, ignore_errors=True)
    load_after = os.getloadavg()
    row = lambda v: {"p50_ms": statistics.median(v), "p99_ms": pct(v, 0.99)}  # noqa: E731
    return {
        "memories": args.memories, "queries_per_round": args.queries, "rounds": args.rounds,
        "engine": direct.backend, "engine_hnsw": hnsw,
        "load_average_before": load_before, "load_average_after": load_after,
        "ingest_memories_per_s": memories_s, "document_chunks": document["chunks"], "chunks_per_s": chunks_s,
        "gateway": row(gateway_ms), "direct": row(direct_ms), "engine_alone": row(engine_ms),
        "embedding_direct": row(embed_ms), "memory_grpc": row(memory_ms), "chat_embed_grpc": row(chat_ms),
    }


async def open_direct(p: Platform) -> tuple[VectorIndex, Path | None]:
    """The engine the memory service uses: the Qdrant server when QDRANT_URL is set, else a copy of its edge
    shards (the service holds the lock on the live folder; a copy replays the write-ahead log on load)."""
    url = os.environ.get("QDRANT_URL")
    if url:
        return open_index(url, Path(), api_key=os.environ.get("QDRANT_API_KEY")), None
    vectors = p.home / "memory" / "vectors"
    # The service builds HNSW in the background once writes have paused for 2 s (edge_index.py): copy the
    # folder when no build is under way (no .build-<name> / .old-<name> beside the shards, and the replaced
    # shard, .trash-<name>, deleted).
    await asyncio.sleep(3)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not any(f.name.startswith((".build-", ".old-", ".trash-")) for f in vectors.iterdir()):
            break
        await asyncio.sleep(0.2)
    copy = Path(tempfile.mkdtemp(prefix="memory-vectors-copy-"))
    shutil.copytree(vectors, copy / "vectors", ignore=shutil.ignore_patterns(".build-*", ".old-*", ".trash-*"))
    return open_index(None, copy / "vectors"), copy


def benchmark(args: argparse.Namespace) -> None:
    # A database of its own: the memory records must match the fresh vector folder of the temporary home.
    database = f"sutazai_bench_memory_{os.getpid()}"
    try:
        with platform_stack({"SUTAZAI_DATABASE_NAME": database}) as p:
            result = asyncio.run(measure(p, args))
    finally:
        asyncio.run(drop_database(database))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    g, d = result["gateway"], result["direct"]
    print(f"engine: {result['engine']}{' (HNSW)' if result.get('engine_hnsw') else ''}; load average before "  # noqa: T201
          f"{' '.join(f'{x:.2f}' for x in result['load_average_before'])}, after "
          f"{' '.join(f'{x:.2f}' for x in result['load_average_after'])}")
    print(f"memories stored: {result['memories']} at {result['ingest_memories_per_s']:.1f}/s; "  # noqa: T201
          f"document: {result['document_chunks']} chunks at {result['chunks_per_s']:.1f} chunks/s")
    print(f"{'search (hybrid, limit 10)':40} {'p50 ms':>8} {'p99 ms':>8}")  # noqa: T201
    for label, key in (("gateway POST /api/v1/memory/search", "gateway"),
                       ("direct: embeddings server + engine", "direct"),
                       ("  of which the embedding (HTTP)", "embedding_direct"),
                       ("  of which the engine query", "engine_alone"),
                       ("memory service: gRPC SearchMemories", "memory_grpc"),
                       ("chat service: gRPC Embed", "chat_embed_grpc")):
        print(f"{label:40} {result[key]['p50_ms']:8.2f} {result[key]['p99_ms']:8.2f}")  # noqa: T201
    print(f"gateway path adds p50 {g['p50_ms'] - d['p50_ms']:.2f} ms "  # noqa: T201
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
