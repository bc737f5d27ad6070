"""The mesh's catalog over a registry: states and resolution by strategy; external health over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from sutazai_mesh.catalog import HEALTHY, UNHEALTHY, UNKNOWN, Catalog
from sutazai_runtime.discovery import CRITICAL, Instance
from sutazai_runtime.discovery.static import StaticRegistry


async def catalog() -> Catalog:
    registry = StaticRegistry({"agents": "127.0.0.1:1,127.0.0.1:2"})
    await registry.start()
    await registry.register(Instance(id="agents-x", name="agents", address="127.0.0.1", port=3, state=CRITICAL))
    return Catalog(registry)


async def test_states_and_resolution() -> None:
    c = await catalog()
    states = {i.id: c.state(i) for i in c.instances("agents")}
    assert states == {"agents@127.0.0.1:1": HEALTHY, "agents@127.0.0.1:2": HEALTHY, "agents-x": UNHEALTHY}
    picked = {c.resolve("agents", "round_robin").id for _ in range(4)}  # type: ignore[union-attr]
    assert picked == {"agents@127.0.0.1:1", "agents@127.0.0.1:2"}  # never the critical one
    same = {c.resolve("agents", "ip_hash", "client-7").id for _ in range(5)}  # type: ignore[union-attr]
    assert len(same) == 1
    assert c.resolve("nothing", "random") is None
    with pytest.raises(ValueError, match="unknown load-balancing strategy"):
        c.resolve("agents", "fastest")


async def test_external_instances_are_checked_over_http() -> None:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    c = await catalog()
    up = Instance(id="ext-up", name="billing", address="127.0.0.1", port=port, external=True)
    down = Instance(id="ext-down", name="billing", address="127.0.0.1", port=9, external=True)
    await c.registry.register_external(up)  # type: ignore[attr-defined]
    await c.registry.register_external(down)  # type: ignore[attr-defined]
    assert c.state(up) == UNKNOWN
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        await c.check_external(session, [up, down])
    assert (c.state(up), c.state(down)) == (HEALTHY, UNHEALTHY)
    assert c.resolve("billing", "random").id == "ext-up"  # type: ignore[union-attr]
    await runner.cleanup()
