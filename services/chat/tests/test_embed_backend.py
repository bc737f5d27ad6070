"""``OpenAIBackend.embed`` against a small OpenAI-compatible HTTP server on a free port: base64 and float
replies, the order by ``index``, the bearer key, and failures classified as the official client's were
(a 4xx is the request's fault, a 5xx, 429, a refused connection or a malformed reply the backend's)."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from sutazai_chat.backend_config import BackendSpec
from sutazai_chat.backends import BackendCallError, BackendRejectedError, OpenAIBackend
from sutazai_stack.ports import free_port

VECTORS = {"a": [0.25, -1.5, 3.0], "bb": [1e-8, 0.1, -0.333333]}  # 0.1 and -0.333333 are not exact in float32


def _f32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        if body["input"] == ["status 404"]:
            return web.json_response({"error": {"message": "no such model"}}, status=404)
        if body["input"] == ["status 429"]:
            return web.json_response({"error": {"message": "slow down"}}, status=429)
        if body["input"] == ["status 500"]:
            return web.Response(status=500, text="boom")
        if body["input"] == ["short"]:
            return web.json_response({"data": [], "usage": {"prompt_tokens": 0}})
        if body["input"] == ["garbage"]:
            return web.Response(text="not json", content_type="application/json")
        floats = body["input"] == ["a", "floats"]
        data = [{"object": "embedding", "index": i,
                 "embedding": VECTORS.get(text, [0.0]) if floats else
                 base64.b64encode(struct.pack(f"<{len(VECTORS[text])}f", *VECTORS[text])).decode()}
                for i, text in enumerate(body["input"])]
        return web.json_response({"object": "list", "data": data[::-1], "model": body["model"],
                                  "usage": {"prompt_tokens": 7, "total_tokens": 7}})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def _backend(url: str) -> OpenAIBackend:
    spec = BackendSpec(name="emb", kind="openai", url=url, api_key=SecretStr("sekret"))
    return OpenAIBackend(spec, connect_timeout_s=2, request_timeout_s=5)


async def test_embed_reads_base64_and_float_replies_in_index_order(server: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = server
    backend = _backend(url)
    try:
        out = await backend.embed("m", ["a", "bb"])
        assert out.vectors == [_f32(VECTORS["a"]), _f32(VECTORS["bb"])] and out.prompt_tokens == 7
        assert seen[-1] == {"body": {"model": "m", "input": ["a", "bb"], "encoding_format": "base64"},
                            "auth": "Bearer sekret"}
        floats = await backend.embed("m", ["a", "floats"])
        assert floats.vectors == [VECTORS["a"], [0.0]]
    finally:
        await backend.close()


@pytest.mark.parametrize(("text", "error"), [
    ("status 404", BackendRejectedError), ("status 429", BackendCallError), ("status 500", BackendCallError),
    ("short", BackendCallError), ("garbage", BackendCallError),
])
async def test_embed_failures_are_classified(server: tuple[str, list[dict[str, Any]]], text: str,
                                             error: type[Exception]) -> None:
    backend = _backend(server[0])
    try:
        with pytest.raises(error) as raised:
            await backend.embed("m", [text])
        assert type(raised.value) is error
    finally:
        await backend.close()


async def test_embed_on_a_closed_port_is_the_backends_failure() -> None:
    backend = _backend(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(BackendCallError) as raised:
            await backend.embed("m", ["a"])
        assert type(raised.value) is BackendCallError
    finally:
        await backend.close()
