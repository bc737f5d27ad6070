"""The edge across TWO gateway processes sharing the real Redis, with the original's default limits: the
61st request of a plain user in a minute is refused whichever process serves it, another user is not; the
anonymous limit per address; the API cache hit, missed and invalidated across processes; request ids, CORS
and GZip on the real app. A real agents service (on the test database) serves the agents routes.

Two persistent connections, each pinned to one worker (a connection stays with the process that accepted
it; an admin's ``GET /api/v1/health/circuit-breakers`` says which), prove the "across processes" part."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sutazai_gateway.auth import api_keys
from sutazai_stack.ports import free_port as _free_port

pytestmark = pytest.mark.timeout(600)
ORIGIN = "https://app.example"
START_TIMEOUT_S = 240.0  # each worker imports the whole app afresh (spawn); slow on a busy machine


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _workers_of(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children() if "spawn_main" in " ".join(p.cmdline())]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def edge(postgres_url: str, redis_url: str, nats_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp_path = tmp_path_factory.mktemp("edge")
    (tmp_path / "agents").mkdir()
    agents_port, port, key = _free_port(), _free_port(), api_keys.generate_key()
    base = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "NATS_URL": nats_url,
            "SUTAZAI_DISCOVERY_BACKEND": "static"}
    for name in [n for n in base if n.startswith("SUTAZAI_GATEWAY_")]:
        del base[name]  # the defaults, whatever the shell says
    agents_env = {**base, "SUTAZAI_AGENTS_GRPC_PORT": str(agents_port), "SUTAZAI_AGENTS_METRICS_PORT": "0",
                  "SUTAZAI_AGENTS_DIR": str(tmp_path / "agents"),
                  "SUTAZAI_AGENTS_CHAT_ADDR": f"127.0.0.1:{_free_port()}"}
    gateway_env = {
        **base, "SUTAZAI_GATEWAY_PORT": str(port), "SUTAZAI_GATEWAY_METRICS_PORT": "0", "SUTAZAI_GATEWAY_WORKERS": "2",
        "SUTAZAI_GATEWAY_JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_USERNAME": f"adm_{uuid.uuid4().hex[:10]}",
        "SUTAZAI_GATEWAY_BOOTSTRAP_ADMIN_PASSWORD": uuid.uuid4().hex, "SUTAZAI_GATEWAY_BOOTSTRAP_API_KEY": key,
        "SUTAZAI_GATEWAY_AGENTS_ADDR": f"127.0.0.1:{agents_port}", "SUTAZAI_GATEWAY_LOG_LEVEL": "INFO",
        # A namespace of this run's own: no other gateway's counters, no counters left from an earlier run.
        "SUTAZAI_GATEWAY_CACHE_PREFIX": f"test:{uuid.uuid4().hex}:gateway:",
        "SUTAZAI_GATEWAY_CORS_ORIGINS": json.dumps([ORIGIN]),
    }
    logs = [(tmp_path / "agents.log").open("wb"), (tmp_path / "gateway.log").open("wb")]
    agents = subprocess.Popen([sys.executable, "-m", "sutazai_agents"], env=agents_env, stdout=logs[0],
                              stderr=subprocess.STDOUT)
    gateway = subprocess.Popen([sys.executable, "-m", "sutazai_gateway"], env=gateway_env, stdout=logs[1],
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(_workers_of(gateway.pid)) < 2 or not _answers(url + "/health-emergency"):
            assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
            assert agents.poll() is None, (tmp_path / "agents.log").read_text()
            assert time.monotonic() < deadline, "the gateway's workers did not answer in time"
            time.sleep(0.2)
        yield {"url": url, "key": key, "log": tmp_path / "gateway.log", "agents_dir": tmp_path / "agents"}
    finally:
        _stop(gateway)
        _stop(agents)
        for log in logs:
            log.close()


def _pinned(url: str, admin_key: str) -> dict[int, httpx.Client]:
    """One keep-alive connection to each of the two workers, keyed by its process id."""
    clients: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + 60
    while len(clients) < 2:
        assert time.monotonic() < deadline, "could not reach both workers"
        client = httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_connections=1))
        process = client.get("/api/v1/health/circuit-breakers", headers={"X-API-Key": admin_key}).json()["process"]
        if process in clients:
            client.close()
        else:
            clients[process] = client
    return clients


def _user_key(url: str, admin_key: str) -> str:
    admin = {"X-API-Key": admin_key}
    name, password = f"u_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    assert httpx.post(url + "/api/v1/auth/users", json={"username": name, "password": password},
                      headers=admin, timeout=10).status_code == 201
    token = httpx.post(url + "/api/v1/auth/login", json={"username": name, "password": password},
                       timeout=10).json()["access_token"]
    created = httpx.post(url + "/api/v1/auth/api-keys", json={"name": "test"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return str(created.json()["key"])


def test_the_61st_request_of_a_user_in_a_minute_is_refused_on_every_process(edge: dict[str, object]) -> None:
    url, admin_key = str(edge["url"]), str(edge["key"])
    alice, bob = _user_key(url, admin_key), _user_key(url, admin_key)
    clients = list(_pinned(url, admin_key).values())
    try:
        remaining = []
        # Her first request made her API key; the 2nd to the 60th alternate between the two processes.
        for i in range(59):
            response = clients[i % 2].get("/api/v1/auth/me", headers={"X-API-Key": alice})
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-limit"] == "60"
            assert 0 < int(response.headers["ratelimit-reset"]) <= 60
            remaining.append(int(response.headers["ratelimit-remaining"]))
        assert remaining == list(range(58, -1, -1))  # one count, shared: each answer saw the other process's
        for client in clients:
            refused = client.get("/api/v1/auth/me", headers={"X-API-Key": alice})
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["status"] == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert refused.headers["ratelimit-remaining"] == "0"
            assert refused.headers["ratelimit-limit"] == "60"
        other = clients[0].get("/api/v1/auth/me", headers={"X-API-Key": bob})
        assert other.status_code == 200
        assert other.headers["ratelimit-remaining"] == "58"  # his second request
        # Model calls count against buckets of their own, with the original's limits (no chat service runs
        # here: the answer is a 503, counted all the same).
        chat = clients[1].post("/api/v1/chat", json={"message": "hi"}, headers={"X-API-Key": bob})
        assert (chat.headers["ratelimit-limit"], chat.headers["ratelimit-remaining"]) == ("30", "29")
        stream = clients[0].post("/api/v1/chat/stream", json={"message": "hi"}, headers={"X-API-Key": alice})
        assert (stream.headers["ratelimit-limit"], stream.headers["ratelimit-remaining"]) == ("20", "19")
        # The admin is exempt: no count, no headers.
        admin = clients[1].get("/api/v1/auth/me", headers={"X-API-Key": admin_key})
        assert admin.status_code == 200 and "ratelimit-limit" not in admin.headers
    finally:
        for client in clients:
            client.close()


def test_the_api_cache_across_processes(edge: dict[str, object]) -> None:
    url, admin_key = str(edge["url"]), str(edge["key"])
    admin = {"X-API-Key": admin_key}
    first, second = list(_pinned(url, admin_key).values())
    agent_id = f"cached-{uuid.uuid4().hex[:8]}"
    fields = {"name": "Cached", "description": "one", "system_prompt": "You help."}
    try:
        # An agent file edited on disk (the agents service's hot reload, announced over NATS): seen at once.
        path = Path(str(edge["agents_dir"])) / "on-disk.md"
        path.write_text("---\nname: on-disk\ndescription: first\n---\nYou check.\n")
        deadline = time.monotonic() + 30
        while first.get("/api/v1/agents/on-disk", headers=admin).status_code != 200:
            assert time.monotonic() < deadline, "the agent file was not picked up"
            time.sleep(0.2)
        assert second.get("/api/v1/agents/on-disk", headers=admin).headers["x-cache"] == "HIT"
        path.write_text("---\nname: on-disk\ndescription: second\n---\nYou check.\n")
        deadline = time.monotonic() + 10  # far below the cache's 30 s
        while (seen := second.get("/api/v1/agents/on-disk", headers=admin).json())["description"] != "second":
            assert time.monotonic() < deadline, f"the edited file was not announced: {seen}"
            time.sleep(0.1)
        # (the file stays: its removal would be announced in the middle of what follows)

        assert first.post("/api/v1/agents", json={"id": agent_id, **fields}, headers=admin).status_code == 201
        before = first.get("/api/v1/cache/stats", headers=admin).json()["caches"]["api"]
        miss = first.get(f"/api/v1/agents/{agent_id}", headers=admin)
        hit = second.get(f"/api/v1/agents/{agent_id}", headers=admin)
        assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
        assert hit.json() == miss.json()
        # An update through one process: the other's next read is a miss, with the new value.
        assert second.put(f"/api/v1/agents/{agent_id}", json={**fields, "description": "two"},
                          headers=admin).status_code == 200
        after_update = first.get(f"/api/v1/agents/{agent_id}", headers=admin)
        assert (after_update.headers["x-cache"], after_update.json()["description"]) == ("MISS", "two")
        listed = [second.get("/api/v1/agents", headers=admin) for _ in range(2)]
        assert [r.headers["x-cache"] for r in listed] == ["MISS", "HIT"]
        assert listed[1].headers["x-total-count"] == listed[0].headers["x-total-count"]
        # The admin's invalidation by tag reaches every process.
        done = first.post("/api/v1/cache/invalidate", json=["agents"], headers=admin)
        assert done.status_code == 200 and done.json()["tags"] == ["agents"]
        assert second.get("/api/v1/agents", headers=admin).headers["x-cache"] == "MISS"
        assert second.delete(f"/api/v1/agents/{agent_id}", headers=admin).status_code == 204
        assert first.get(f"/api/v1/agents/{agent_id}", headers=admin).status_code == 404
        stats = second.get("/api/v1/cache/stats", headers=admin).json()
        api = stats["caches"]["api"]
        # reads: miss, hit, miss (update), list miss, list hit, list miss (invalidated), 404 (a miss, not kept)
        assert api["gets"] - before["gets"] == 7
        assert api["hits"] - before["hits"] == 2
        assert api["misses"] - before["misses"] == 5
        assert api["sets"] - before["sets"] == 4
        assert {"gets", "sets", "hits", "misses", "evictions", "hit_rate", "hit_rate_percent",
                "redis_server"} <= set(stats)
        assert stats["caches"]["chat"] is None and stats["chat_error"]  # no chat service in this test
        user = {"X-API-Key": _user_key(url, admin_key)}
        assert first.post("/api/v1/cache/invalidate", json=["all"], headers=user).status_code == 403
        for bad_body in (b'{"tags": "agents"}', b'["\\ud800"]', b'["a tag"]', b'[""]'):
            bad = first.post("/api/v1/cache/invalidate", content=bad_body,
                             headers={**admin, "Content-Type": "application/json"})
            assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    finally:
        first.close()
        second.close()


def test_request_ids_cors_and_gzip(edge: dict[str, object]) -> None:
    url, admin_key = str(edge["url"]), str(edge["key"])
    admin = {"X-API-Key": admin_key}
    request_id = f"req-{uuid.uuid4().hex}"
    done = httpx.post(url + "/api/v1/cache/invalidate", json=["models"],
                      headers={**admin, "X-Request-ID": request_id}, timeout=10)
    assert done.headers["x-request-id"] == request_id
    deadline = time.monotonic() + 10
    while request_id not in (text := Path(str(edge["log"])).read_text(errors="replace")):
        assert time.monotonic() < deadline, "the request's log line did not appear"
        time.sleep(0.1)
    logged = [json.loads(line) for line in text.splitlines() if request_id in line]
    assert any(line["message"].startswith("API cache invalidated") and line["request_id"] == request_id
               for line in logged)
    assert admin_key not in text
    unknown = httpx.get(url + "/no/such/route", timeout=10)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert len(unknown.headers["x-request-id"]) == 32

    preflight = httpx.options(url + "/api/v1/agents", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X-API-Key"},
        timeout=10)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    stranger = httpx.options(url + "/api/v1/agents", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, timeout=10)
    assert "access-control-allow-origin" not in stranger.headers
    simple = httpx.get(url + "/api/v1/agents", headers={**admin, "Origin": ORIGIN}, timeout=10)
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()

    with httpx.Client(timeout=10) as client:
        raw = client.get(url + "/openapi.json", headers={"Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        assert "paths" in raw.json()  # httpx decodes it
        plain = client.get(url + "/openapi.json", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert len(gzip.compress(plain.content)) < len(plain.content)
        schema = plain.json()
        agents_get = schema["paths"]["/api/v1/agents/{agent_id}"]["get"]["responses"]
        assert "429" in agents_get
        assert "429" not in schema["paths"]["/health"]["get"]["responses"]


def test_requests_without_a_credential_are_limited_per_address(edge: dict[str, object]) -> None:
    # Last in the module: it spends what is left of this address's minute (the other tests log in from it).
    url = str(edge["url"])
    with httpx.Client(base_url=url, timeout=10) as client:
        first = client.get("/api/v1/status")
        assert first.status_code == 200 and first.headers["ratelimit-limit"] == "60"
        left = int(first.headers["ratelimit-remaining"])  # the other tests' logins came from this address too
        assert left >= 50
        statuses = [client.get("/api/v1/status").status_code for _ in range(left + 1)]
        assert statuses == [200] * left + [429]
        assert client.get("/health").status_code == 200  # answers from the process alone: never counted
        # A wrong key counts as the address too (it is refused anyway).
        wrong = client.get("/api/v1/agents", headers={"X-API-Key": api_keys.generate_key()})
        assert wrong.status_code == 429
