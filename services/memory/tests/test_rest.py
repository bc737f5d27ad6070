"""The REST surface (gateway routes) on the real memory servicer: every route with two users, bad input as
problem responses. The gateway runs in-process on its own PostgreSQL database (auth schema), the machine's
Redis and NATS, with the memory service of the session fixture as its upstream."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from sutazai_gateway.config import Settings as GatewaySettings
from sutazai_gateway.main import create_app
from sutazai_runtime.discovery.settings import DiscoverySettings

PDF_SNIPPET = b"%PDF-1.4\n"


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[str, str]
    ids: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}


@pytest.fixture(scope="session")
async def api(memory: Any, postgres_url: str, redis_url: str, nats_url: str) -> AsyncIterator[Api]:
    database = f"memrest_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_url, timeout=5)
    url = postgres_url.rsplit("/", 1)[0] + "/" + database
    settings = GatewaySettings(
        database_url=url, redis_url=redis_url, nats_url=nats_url, metrics_port=0,
        memory_addr=memory.address, chat_addr=memory.settings.chat_addr,
        jwt_secret=secrets.token_urlsafe(48), bootstrap_admin_password=None, max_upload_bytes=64 * 1024,
        discovery=DiscoverySettings(backend="static"),  # the addresses above; these servers are not registered
        # rate limits are the edge's tests' business; here they would refuse the 61st request of the module
        rate_limit_enabled=False, cache_prefix=f"sutazai:{database}:gateway:",
    )
    app = create_app(settings)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        async with app.router.lifespan_context(app):
            auth = app.state.gateway.auth
            keys, ids = {}, {}
            for who in ("alice", "bob"):
                user = await auth.create_user(f"{who}-{uuid.uuid4().hex[:6]}", "pw-" + "y" * 20, email=None,
                                              is_admin=False)
                ids[who] = user.id
                keys[who] = (await auth.create_api_key(user.id, "test"))[1]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=60) as http:
                yield Api(http, keys, ids)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_root_lists_memory_as_a_feature(api: Api) -> None:
    assert (await ok(await api.http.get("/")))["features"]["memory"] is True


async def test_memory_routes_with_two_users(api: Api) -> None:
    h, a, b = api.http, api.as_("alice"), api.as_("bob")
    added = await ok(await h.post("/api/v1/memory", headers=a, json={
        "content": "Alice's cat is named Pixel.", "metadata": {"topic": "pets"}, "agent_id": "helper"}), 201)
    memory_id = added["results"][0]["id"]
    assert added["results"][0]["event"] == "created" and added["model_calls"] == 0
    batch = await ok(await h.post("/api/v1/memory", headers=a, json={"memories": [
        {"content": "Alice's cat is named Pixel.", "agent_id": "helper"}, {"content": "Alice drives a red van."}]}),
        201)
    assert [r["event"] for r in batch["results"]] == ["duplicate", "created"]
    assert batch["results"][0]["id"] == memory_id

    found = await ok(await h.post("/api/v1/memory/search", headers=a, json={"query": "what is the pet called"}))
    assert found["results"][0]["id"] == memory_id
    assert set(found["results"][0]) >= {"id", "content", "metadata", "score"}
    assert not (await ok(await h.post("/api/v1/memory/search", headers=b, json={"query": "Pixel cat"})))["results"]

    listed = await ok(await h.get("/api/v1/memory", headers=a, params={"limit": 1}))
    assert listed["total"] == 2 and len(listed["memories"]) == 1
    assert (await ok(await h.get("/api/v1/memory", headers=b)))["total"] == 0

    assert (await ok(await h.get(f"/api/v1/memory/{memory_id}", headers=a)))["metadata"] == {"topic": "pets"}
    updated = await ok(await h.put(f"/api/v1/memory/{memory_id}", headers=a, json={"content": "The cat is Byte."}))
    assert updated["content"] == "The cat is Byte."
    for method, path, body in [("GET", "", None), ("PUT", "", {"content": "stolen"}), ("DELETE", "", None),
                               ("GET", "/history", None)]:
        is_problem(await h.request(method, f"/api/v1/memory/{memory_id}{path}", headers=b, json=body), 404)
    await ok(await h.delete(f"/api/v1/memory/{memory_id}", headers=a), 204)
    history = await ok(await h.get(f"/api/v1/memory/{memory_id}/history", headers=a))
    assert [c["event"] for c in history["changes"]] == ["ADD", "UPDATE", "DELETE"]
    is_problem(await h.get(f"/api/v1/memory/{memory_id}", headers=a), 404)


async def test_memory_bad_input_is_a_problem_and_changes_nothing(api: Api) -> None:
    h, a = api.http, api.as_("alice")
    before = (await ok(await h.get("/api/v1/memory", headers=a)))["total"]
    for body in [{}, {"content": ""}, {"content": "x", "messages": [{"role": "user", "content": "y"}]},
                 {"content": "x", "agent_id": "a" * 200}, {"memories": []}, {"content": "x", "unknown": 1}]:
        is_problem(await h.post("/api/v1/memory", headers=a, json=body), 422)
    for body in [{"query": ""}, {"query": "x", "limit": 0}, {"query": "x", "threshold": 3},
                 {"query": "x", "mode": "fuzzy"}]:
        is_problem(await h.post("/api/v1/memory/search", headers=a, json=body), 422)
    is_problem(await h.put("/api/v1/memory/not-a-uuid", headers=a, json={}), 422)
    is_problem(await h.get("/api/v1/memory/not-a-uuid", headers=a), 404)
    is_problem(await h.get("/api/v1/memory"), 401)
    assert (await ok(await h.get("/api/v1/memory", headers=a)))["total"] == before


async def test_metadata_and_properties_come_back_exactly_as_sent(api: Api) -> None:
    """JSON bytes end to end (no protobuf Struct): integers beyond 2**53 and 1.0 apart from 1 survive the
    gateway, gRPC, PostgreSQL, the vector engine's payload, search and history."""
    h, a = api.http, {**api.as_("alice"), "content-type": "application/json"}
    raw = '{"content": "The exact ledger entry is LEDGER-77.", "metadata": {"big": 12345678901234567891, "f": 1.0}}'
    added = await ok(await h.post("/api/v1/memory", headers=a, content=raw), 201)
    memory_id = added["results"][0]["id"]
    for got in [added["results"][0]["memory"]["metadata"],
                (await ok(await h.get(f"/api/v1/memory/{memory_id}", headers=a)))["metadata"],
                (await ok(await h.post("/api/v1/memory/search", headers=a,
                                       json={"query": "LEDGER-77", "limit": 1})))["results"][0]["metadata"],
                (await ok(await h.get(f"/api/v1/memory/{memory_id}/history", headers=a)))["changes"][0]
                ["new_metadata"]]:
        assert got == {"big": 12345678901234567891, "f": 1.0} and isinstance(got["f"], float)
    text = (await h.get(f"/api/v1/memory/{memory_id}", headers=a)).text
    assert '12345678901234567891' in text and '1.0' in text
    entity = await ok(await h.post("/api/v1/graph/entities", headers=a,
                                   content='{"name": "ledger", "type": "thing", "properties": {"big": '
                                           '12345678901234567891, "f": 1.0}}'), 201)
    assert entity["properties"] == {"big": 12345678901234567891, "f": 1.0}
    assert isinstance(entity["properties"]["f"], float)


async def test_a_lone_surrogate_is_refused_with_422_and_nothing_is_stored(api: Api) -> None:
    """And NaN or Infinity in user data (Python's json reads them; they are not JSON, and an answer holding
    them would not parse)."""
    h, a = api.http, {**api.as_("alice"), "content-type": "application/json"}
    before = (await ok(await h.get("/api/v1/memory", headers=a)))["total"]
    for path, raw in [("/api/v1/memory", '{"content": "x", "metadata": {"\\ud800": 1}}'),
                      ("/api/v1/memory", '{"content": "bad \\udc00 text"}'),
                      ("/api/v1/memory/search", '{"query": "x", "metadata": {"\\ud800": "a"}}'),
                      ("/api/v1/memory/search", '{"query": "\\ud800"}'),
                      ("/api/v1/graph/entities", '{"name": "n", "type": "t", "properties": {"k": "\\ud800"}}'),
                      ("/api/v1/memory", '{"content": "x", "metadata": {"k": NaN}}'),
                      ("/api/v1/memory", '{"content": "x", "metadata": {"k": [1, -Infinity]}}'),
                      ("/api/v1/graph/entities", '{"name": "n", "type": "t", "properties": {"k": Infinity}}')]:
        is_problem(await h.post(path, headers=a, content=raw), 422)
    assert (await ok(await h.get("/api/v1/memory", headers=a)))["total"] == before


async def test_vectors_routes_keep_the_original_shapes_per_user(api: Api) -> None:
    h, a, b = api.http, api.as_("alice"), api.as_("bob")
    stored = await ok(await h.post("/api/v1/vectors/store", headers=a, json={
        "text": "Quarterly revenue grew by 12 percent.", "metadata": {"source": "report"}}))
    assert stored["status"] == "stored" and stored["backend"] == "qdrant-edge" and stored["id"]
    hits = await ok(await h.post("/api/v1/vectors/search", headers=a, json={"query": "quarterly revenue growth",
                                                                           "threshold": 0.3}))
    assert isinstance(hits, list) and hits[0]["id"] == stored["id"]
    assert set(hits[0]) >= {"id", "text", "metadata", "score"}
    assert await ok(await h.post("/api/v1/vectors/search", headers=b, json={"query": "quarterly revenue growth",
                                                                           "threshold": 0.0})) == []
    collections = await ok(await h.get("/api/v1/vectors/collections", headers=a))
    assert {"name": "sutazai_docs", "count": 1} == {k: collections["collections"][-1][k] for k in ("name", "count")} \
        or any(c["name"] == "sutazai_docs" for c in collections["collections"])
    assert not any(c["name"] == "sutazai_docs"
                   for c in (await ok(await h.get("/api/v1/vectors/collections", headers=b)))["collections"])
    stats = await ok(await h.get("/api/v1/vectors/stats", headers=a))
    assert stats["dimensions"] == 384 and stats["total_vectors"] >= 1
    assert (await ok(await h.get("/api/v1/vectors/stats", headers=b)))["total_vectors"] == 0
    is_problem(await h.post("/api/v1/vectors/search", headers=a, json={"query": "x", "limit": 101}), 422)


async def _ready(h: httpx.AsyncClient, headers: dict[str, str], document_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        doc: dict[str, Any] = await ok(await h.get(f"/api/v1/documents/{document_id}", headers=headers))
        if doc["status"] != "processing":
            return doc
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_document_routes_with_two_users(api: Api) -> None:
    h, a, b = api.http, api.as_("alice"), api.as_("bob")
    md = await ok(await h.post("/api/v1/documents/upload", headers=a, data={"tags": "guide, ops",
                                                                             "description": "on-call guide"},
                               files={"file": ("oncall.md", b"# On call\n\nThe pager rotation changes on "
                                               b"Wednesdays. Code word: HERON-204.", "text/markdown")}), 202)
    assert md["status"] == "processing" and md["tags"] == ["guide", "ops"]
    text = await ok(await h.post("/api/v1/documents", headers=a, json={
        "filename": "notes.txt", "content": "The coffee machine is on the fourth floor.", "tags": ["misc"]}), 202)
    assert (await _ready(h, a, md["id"]))["status"] == "ready"
    assert (await _ready(h, a, text["id"]))["chunks"] >= 1
    hits = await ok(await h.post("/api/v1/documents/search", headers=a, json={"query": "HERON-204"}))
    assert hits["results"][0]["document_id"] == md["id"] and "HERON-204" in hits["results"][0]["chunk"]
    assert set(hits["results"][0]) >= {"document_id", "chunk", "score"}
    tagged = await ok(await h.post("/api/v1/documents/search", headers=a, json={"query": "floor", "tags": ["misc"]}))
    assert {r["document_id"] for r in tagged["results"]} == {text["id"]}
    assert not (await ok(await h.post("/api/v1/documents/search", headers=b, json={"query": "HERON-204"})))["results"]
    listed = await ok(await h.get("/api/v1/documents", headers=a, params={"search": "on-call"}))
    assert [d["id"] for d in listed["documents"]] == [md["id"]]
    assert (await ok(await h.get("/api/v1/documents", headers=b)))["total"] == 0
    download = await h.get(f"/api/v1/documents/{md['id']}/download", headers=a)
    assert download.status_code == 200 and b"HERON-204" in download.content
    assert download.headers["content-type"].startswith("text/markdown")
    stats = await ok(await h.get("/api/v1/documents/stats", headers=a))
    assert stats["total_documents"] == 2 and stats["by_status"] == {"ready": 2}
    assert (await ok(await h.get("/api/v1/documents/stats", headers=b)))["total_documents"] == 0
    for method, path in [("GET", ""), ("GET", "/download"), ("DELETE", "")]:
        is_problem(await h.request(method, f"/api/v1/documents/{md['id']}{path}", headers=b), 404)
    await ok(await h.delete(f"/api/v1/documents/{md['id']}", headers=a), 204)
    assert not (await ok(await h.post("/api/v1/documents/search", headers=a, json={"query": "HERON-204 pager"})
                         ))["results"] or all(r["document_id"] != md["id"] for r in (await ok(await h.post(
                             "/api/v1/documents/search", headers=a, json={"query": "HERON-204 pager"})))["results"])


async def test_document_bad_input(api: Api) -> None:
    h, a = api.http, api.as_("alice")
    before = (await ok(await h.get("/api/v1/documents", headers=a)))["total"]
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    body = is_problem(await h.post("/api/v1/documents/upload", headers=a,
                                   files={"file": ("cat.md", png, "text/markdown")}), 400)
    assert "image/png" in body["detail"]
    is_problem(await h.post("/api/v1/documents/upload", headers=a,
                            files={"file": ("big.txt", b"a" * (70 * 1024), "text/plain")}), 413)
    is_problem(await h.post("/api/v1/documents", headers=a, json={"filename": "x", "content_base64": "!!"}), 400)
    is_problem(await h.post("/api/v1/documents", headers=a, json={"filename": "x"}), 422)
    is_problem(await h.post("/api/v1/documents/upload", headers=a), 422)
    is_problem(await h.get("/api/v1/documents", headers=a, params={"limit": 101}), 422)
    assert (await ok(await h.get("/api/v1/documents", headers=a)))["total"] == before


async def test_graph_routes_with_two_users(api: Api) -> None:
    h, a, b = api.http, api.as_("alice"), api.as_("bob")

    async def upsert(name: str, type_: str = "service", headers: dict[str, str] = a, **props: Any) -> dict[str, Any]:
        response = await h.post("/api/v1/graph/entities", headers=headers,
                                json={"name": name, "type": type_, "properties": props})
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    gw, auth, db = await upsert("gateway", tier=1), await upsert("auth"), await upsert("postgres", "database")
    again = await upsert("gateway", owner="team-a")
    assert again["id"] == gw["id"] and not again["created"] and again["properties"] == {"tier": 1, "owner": "team-a"}
    r1 = await ok(await h.post("/api/v1/graph/relations", headers=a, json={
        "source": gw["id"], "target": auth["id"], "type": "calls", "valid_from": "2025-01-01T00:00:00Z"}), 201)
    await ok(await h.post("/api/v1/graph/relations", headers=a, json={
        "source": auth["id"], "target": db["id"], "type": "reads"}), 201)
    sub = await ok(await h.get(f"/api/v1/graph/entities/{gw['id']}", headers=a, params={"depth": 2}))
    assert {e["name"] for e in sub["neighbours"]} == {"auth", "postgres"} and len(sub["relations"]) == 2
    path = await ok(await h.get("/api/v1/graph/path", headers=a, params={"from": gw["id"], "to": db["id"]}))
    assert path["found"] and path["length"] == 2 and [e["name"] for e in path["entities"]] == [
        "gateway", "auth", "postgres"]
    listed = await ok(await h.get("/api/v1/graph/entities", headers=a, params={"type": "service"}))
    assert {e["name"] for e in listed["entities"]} >= {"gateway", "auth"}

    mallory = await upsert("gateway", headers=b)
    assert mallory["created"] and mallory["id"] != gw["id"]
    is_problem(await h.get(f"/api/v1/graph/entities/{gw['id']}", headers=b), 404)
    is_problem(await h.get("/api/v1/graph/path", headers=b, params={"from": gw["id"], "to": db["id"]}), 404)
    is_problem(await h.post("/api/v1/graph/relations", headers=b, json={
        "source": mallory["id"], "target": gw["id"], "type": "pwns"}), 404)
    is_problem(await h.delete(f"/api/v1/graph/relations/{r1['id']}", headers=b), 404)
    is_problem(await h.delete(f"/api/v1/graph/entities/{gw['id']}", headers=b), 404)
    assert {e["id"] for e in (await ok(await h.get("/api/v1/graph/entities", headers=b)))["entities"]} == {
        mallory["id"]}

    await ok(await h.delete(f"/api/v1/graph/relations/{r1['id']}", headers=a), 204)
    gone = await ok(await h.delete(f"/api/v1/graph/entities/{auth['id']}", headers=a))
    assert gone == {"deleted": True, "relations_removed": 1}
    assert not (await ok(await h.get(f"/api/v1/graph/entities/{gw['id']}", headers=a, params={"depth": 3})
                         ))["neighbours"]


async def test_graph_bad_input(api: Api) -> None:
    h, a = api.http, api.as_("alice")
    is_problem(await h.post("/api/v1/graph/entities", headers=a, json={"name": "", "type": "x"}), 422)
    is_problem(await h.post("/api/v1/graph/entities", headers=a, json={"name": "x"}), 422)
    e = (await h.post("/api/v1/graph/entities", headers=a, json={"name": "solo", "type": "x"})).json()
    is_problem(await h.get(f"/api/v1/graph/entities/{e['id']}", headers=a, params={"depth": 6}), 422)
    is_problem(await h.get("/api/v1/graph/path", headers=a, params={"from": e["id"]}), 422)
    is_problem(await h.post("/api/v1/graph/relations", headers=a, json={
        "source": e["id"], "target": e["id"], "type": "t", "valid_from": "2025-01-01T00:00:00Z",
        "valid_to": "2020-01-01T00:00:00Z"}), 400)
