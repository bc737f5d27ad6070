"""Failover, circuit breakers and cancellation against two real llama.cpp servers, one killed mid-run."""

from __future__ import annotations

import asyncio
import time

import grpc
from sutazai.chat.v1 import chat_pb2


def _req(text: str, **kw: object) -> chat_pb2.ChatRequest:
    return chat_pb2.ChatRequest(messages=[chat_pb2.Message(role="user", content=text)], **kw)  # type: ignore[arg-type]


def _backend(chat, name):  # type: ignore[no-untyped-def]
    return next(b for b in chat.service.router.backends if b.name == name)


async def test_killing_a_backend_mid_run_keeps_requests_succeeding_and_its_breaker_cycles(  # type: ignore[no-untyped-def]
    ensure_up, make_chat, spec
) -> None:
    a, b = ensure_up
    async with make_chat([spec("a", a), spec("b", b)], breaker_failures=2, breaker_reset_s=6.0) as chat:
        served_by: list[str] = []
        errors: list[BaseException] = []

        async def client() -> None:
            for i in range(8):
                try:
                    reply = await chat.stub.Chat(_req(f"Say the number {i}.", max_tokens=8), timeout=60)
                    served_by.append(reply.backend)
                except grpc.aio.AioRpcError as exc:
                    errors.append(exc)

        clients = [asyncio.create_task(client()) for _ in range(2)]
        while len(served_by) < 3:  # noqa: ASYNC110 (polling the progress of the clients above)
            await asyncio.sleep(0.05)
        a.kill()  # mid-run, with requests in flight
        await asyncio.gather(*clients)
        assert errors == [] and len(served_by) == 16
        assert served_by[-4:] == ["b"] * 4
        assert _backend(chat, "a").breaker.state == "open"
        opened_at = time.monotonic() - (6.0 - _backend(chat, "a").breaker.retry_after_s())
        assert _backend(chat, "b").breaker.state == "closed"

        # A stream also fails over while no token has been sent.
        chunks = [c async for c in chat.stub.ChatStream(_req("Hello.", max_tokens=6), timeout=60)]
        assert chunks[-1].done.backend == "b"

        # Bring it back: after the open timeout one probe call goes to it, succeeds, and the breaker closes.
        a.start()
        async with asyncio.timeout(10):  # the breaker's open timeout (6 s) runs out
            while _backend(chat, "a").breaker.state != "half_open":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert time.monotonic() - opened_at >= 5.9
        reply = await chat.stub.Chat(_req("Hi again.", max_tokens=6), timeout=60)
        assert reply.backend == "a"
        assert _backend(chat, "a").breaker.state == "closed"


async def test_every_backend_down_is_unavailable_without_waiting(ensure_up, make_chat, spec) -> None:  # type: ignore[no-untyped-def]
    a, b = ensure_up
    async with make_chat([spec("a", a), spec("b", b)], breaker_failures=1, breaker_reset_s=30.0) as chat:
        a.kill()
        b.kill()
        for _ in range(2):
            started = time.monotonic()
            try:
                await chat.stub.Chat(_req("Hi.", max_tokens=4), timeout=30)
                raise AssertionError("expected UNAVAILABLE")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                details = exc.details() or ""
            assert time.monotonic() - started < 2
        assert "circuit breakers open" in details  # the second call did not even try the dead servers


async def test_a_client_that_goes_away_stops_the_generation_on_the_model_server(  # type: ignore[no-untyped-def]
    ensure_up, make_chat, spec
) -> None:
    a, _ = ensure_up
    async with make_chat([spec("a", a)]) as chat:
        before = a.log().count("Disconnected from client")
        request = _req("Write a very long story about the sea.", max_tokens=1500, temperature=0)
        call = chat.stub.ChatStream(request, timeout=120)
        received = 0
        async for _chunk in call:
            received += 1
            if received == 3:
                break
        call.cancel()
        deadline = time.monotonic() + 10
        while a.log().count("Disconnected from client") == before and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert a.log().count("Disconnected from client") == before + 1
        # The server is free again: a short request does not wait behind 1500 tokens (~30 s or more here);
        # the bound is loose because this machine is shared.
        started = time.monotonic()
        await chat.stub.Chat(_req("Hi.", max_tokens=4), timeout=60)
        assert time.monotonic() - started < 15
