"""Unary calls carried on one long-lived stream (``sutazai_runtime.multiplex``), over a real server run by
``serve`` and called through ``Upstream`` with the method in its policy's ``multiplexed``: the same answers,
errors, identity checks, metrics and deadlines as the unary call; many calls at once on one stream; a stream
that breaks fails its calls with UNAVAILABLE and the next call opens a new one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime import deadlines
from sutazai_runtime.grpc_server import GrpcService, serve
from sutazai_runtime.identity import ROLES_KEY, USER_ID_KEY, require_identity, testing
from sutazai_runtime.multiplex import MultiplexedStream
from sutazai_runtime.resilience.breaker import BreakerPolicy
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy
from sutazai_runtime.settings import ServiceSettings

SERVICE = "sutazai.tasks.v1.TaskService"
GET_TASK = f"/{SERVICE}/GetTask"


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_MUXTEST_")
    grpc_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0)
    register_instance: bool = False


class _Tasks(tasks_pb2_grpc.TaskServiceServicer):
    """GetTask answers with the caller's user id; "missing" is NOT_FOUND (tagged as the service's own error),
    "slow-<s>" sleeps s seconds first, "deadline" answers with the deadline it was given."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def GetTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        caller = await require_identity(context)
        task_id = request.task_id
        if task_id == "missing":
            context.set_trailing_metadata((("sutazai-error", "not_found"),))
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such task")
        if task_id.startswith("slow-"):
            try:
                await asyncio.sleep(float(task_id.removeprefix("slow-")))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if task_id == "deadline":
            return tasks_pb2.Task(task_id=f"{deadlines.remaining_s():.3f}")
        return tasks_pb2.Task(task_id=f"{task_id}:{caller.user_id}")


@contextlib.asynccontextmanager
async def _served(port: int = 0) -> AsyncIterator[tuple[_Tasks, int]]:
    servicer = _Tasks()
    stop = asyncio.Event()
    bound: list[int] = []
    spec = GrpcService(name="muxtest", settings=_Settings(probe_interval_s=0.5, grpc_port=port,
                                                          shutdown_grace_s=0.2),
                       register=[lambda s: tasks_pb2_grpc.add_TaskServiceServicer_to_server(servicer, s)],
                       service_names=[SERVICE])
    task = asyncio.create_task(serve(spec, stop=stop, bound_port=bound))
    while not bound and not task.done():  # noqa: ASYNC110 - serve() reports its port through the list
        await asyncio.sleep(0.01)
    try:
        yield servicer, bound[0]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def _upstream(port: int, breaker: BreakerPolicy | None = None) -> Upstream:
    return Upstream("muxtest", targets=[f"127.0.0.1:{port}"],
                    policy=UpstreamPolicy(multiplexed=frozenset({"GetTask"}), timeout_s=5.0,
                                          breaker=breaker or BreakerPolicy()))


def _get(task_id: str) -> tasks_pb2.GetTaskRequest:
    return tasks_pb2.GetTaskRequest(task_id=task_id)


def _handled(code: str) -> float:
    return REGISTRY.get_sample_value("sutazai_grpc_server_handled_total", {
        "grpc_service": SERVICE, "grpc_method": "GetTask", "grpc_code": code}) or 0.0


async def _code(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or "", dict(caught.value.trailing_metadata() or ())


async def test_a_carried_call_answers_like_the_unary_call_with_its_errors_and_metrics() -> None:
    ok_before, missing_before = _handled("OK"), _handled("NOT_FOUND")
    async with _served() as (_, port):
        upstream = _upstream(port)
        try:
            stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
            me = testing.metadata("u-1")
            assert (await stub.GetTask(_get("t1"), metadata=me)).task_id == "t1:u-1"
            assert upstream.endpoints[0].handle.mux is not None  # it went on the stream
            code, details, trailers = await _code(stub.GetTask(_get("missing"), metadata=me))
            assert (code, details, trailers.get("sutazai-error")) == (grpc.StatusCode.NOT_FOUND, "no such task",
                                                                     "not_found")
            assert upstream.breaker.state == "closed"  # the service's own error is no failure of the upstream
            # the handler sees the caller's deadline, as for a unary call
            left = float((await stub.GetTask(_get("deadline"), metadata=me, timeout=2.0)).task_id)
            assert 1.0 < left <= 2.0
        finally:
            await upstream.close()
    assert _handled("OK") - ok_before == 2
    assert _handled("NOT_FOUND") - missing_before == 1


async def test_every_carried_call_is_checked_for_its_own_identity() -> None:
    async with _served() as (_, port):
        upstream = _upstream(port)
        try:
            stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
            assert (await stub.GetTask(_get("a"), metadata=testing.metadata("alice"))).task_id == "a:alice"
            assert (await stub.GetTask(_get("b"), metadata=testing.metadata("bob"))).task_id == "b:bob"
            # none, bare (forged) keys, a tampered proof, two proofs: refused on the same stream
            assert (await _code(stub.GetTask(_get("x"))))[0] == grpc.StatusCode.UNAUTHENTICATED
            forged = ((USER_ID_KEY, "alice"), (ROLES_KEY, "admin"))
            assert (await _code(stub.GetTask(_get("x"), metadata=forged)))[0] == grpc.StatusCode.UNAUTHENTICATED
            (key, proof), = testing.metadata("alice")
            tampered = ((key, proof[:-4] + ("AAAA" if not proof.endswith("AAAA") else "BBBB")),)
            assert (await _code(stub.GetTask(_get("x"), metadata=tampered)))[0] == grpc.StatusCode.UNAUTHENTICATED
            two = (*testing.metadata("alice"), *testing.metadata("bob"))
            assert (await _code(stub.GetTask(_get("x"), metadata=two)))[0] == grpc.StatusCode.UNAUTHENTICATED
            # and the stream still serves the next one
            assert (await stub.GetTask(_get("c"), metadata=testing.metadata("carol"))).task_id == "c:carol"
        finally:
            await upstream.close()


async def test_many_calls_share_one_stream_and_each_gets_its_own_answer() -> None:
    async with _served() as (_, port):
        upstream = _upstream(port)
        try:
            stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
            ids = [f"slow-{(i % 5) / 100}" for i in range(60)]
            users = [f"u{i}" for i in range(60)]
            replies = await asyncio.gather(*(stub.GetTask(_get(t), metadata=testing.metadata(u))
                                             for t, u in zip(ids, users, strict=True)))
            assert [r.task_id for r in replies] == [f"{t}:{u}" for t, u in zip(ids, users, strict=True)]
            assert upstream.endpoints[0].handle.mux.in_flight == 0
        finally:
            await upstream.close()


async def test_a_deadline_ends_the_call_and_cancels_its_handler() -> None:
    async with _served() as (servicer, port):
        upstream = _upstream(port)
        try:
            stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
            started = time.monotonic()
            code, _, _ = await _code(stub.GetTask(_get("slow-5"), metadata=testing.metadata("u"), timeout=0.3))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 2
            await asyncio.wait_for(servicer.cancelled.wait(), 2)  # the server gave up on it too
            assert (await stub.GetTask(_get("after"), metadata=testing.metadata("u"))).task_id == "after:u"
        finally:
            await upstream.close()


async def test_a_broken_stream_fails_its_calls_as_unavailable_and_the_next_call_opens_a_new_one() -> None:
    async with _served() as (_, port):
        # a breaker that stays closed, so that the calls while the server is away do not open it
        upstream = _upstream(port, BreakerPolicy(consecutive_failures=10_000, minimum_requests=10_000))
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        assert (await stub.GetTask(_get("t"), metadata=testing.metadata("u"))).task_id == "t:u"
        waiting = asyncio.create_task(stub.GetTask(_get("slow-30"), metadata=testing.metadata("u")))
        await asyncio.sleep(0.2)
    # the server stopped (its 0.2 s grace ended the stream): the call on it is UNAVAILABLE, not lost in silence
    code, details, _ = await _code(waiting)
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert (await _code(stub.GetTask(_get("t"), metadata=testing.metadata("u"))))[0] == grpc.StatusCode.UNAVAILABLE
    try:
        async with _served(port) as _:  # the same address again
            reply = None
            for _attempt in range(100):
                try:
                    reply = await stub.GetTask(_get("back"), metadata=testing.metadata("u"))
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    await asyncio.sleep(0.1)
            assert reply is not None and reply.task_id == "back:u"
    finally:
        await upstream.close()


async def test_a_method_the_server_does_not_serve_is_unimplemented() -> None:
    async with _served() as (_, port), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = MultiplexedStream(channel)
        try:
            code, details, _ = await _code(stream.call("/sutazai.tasks.v1.TaskService/Nope", b"", timeout=5,
                                                       metadata=testing.metadata("u")))
            assert code == grpc.StatusCode.UNIMPLEMENTED and "Nope" in details
            # a server-streaming method is not carried either
            code, _, _ = await _code(stream.call("/sutazai.tasks.v1.TaskService/WatchTask", b"", timeout=5))
            assert code == grpc.StatusCode.UNIMPLEMENTED
            reply = await stream.call(GET_TASK, _get("raw").SerializeToString(), timeout=5,
                                      metadata=testing.metadata("u"))
            assert tasks_pb2.Task.FromString(reply).task_id == "raw:u"
        finally:
            await stream.close()


async def test_a_caller_that_gives_up_cancels_only_its_own_call() -> None:
    async with _served() as (servicer, port):
        upstream = _upstream(port)
        try:
            stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
            other = asyncio.create_task(stub.GetTask(_get("slow-0.5"), metadata=testing.metadata("v")))
            leaving = asyncio.create_task(stub.GetTask(_get("slow-30"), metadata=testing.metadata("u")))
            await asyncio.sleep(0.1)
            leaving.cancel()  # e.g. the HTTP client went away
            with pytest.raises(asyncio.CancelledError):
                await leaving
            await asyncio.wait_for(servicer.cancelled.wait(), 2)  # its handler was stopped on the server
            assert (await other).task_id == "slow-0.5:v"  # the call beside it was not disturbed
            assert (await stub.GetTask(_get("next"), metadata=testing.metadata("u"))).task_id == "next:u"
        finally:
            await upstream.close()


async def test_a_server_without_multiplex_is_called_unary() -> None:
    """An instance of an older release (no Multiplex service) during a rolling upgrade: the carried call goes
    as a unary call, and so do the next ones."""
    server = grpc.aio.server()
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(_Tasks(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    upstream = _upstream(port)
    try:
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        # no identity interceptor on this bare server: the handler sees none, and says so as the unary call would
        assert (await _code(stub.GetTask(_get("x"), metadata=testing.metadata("u"))))[0] \
            == grpc.StatusCode.UNAUTHENTICATED
        assert upstream.endpoints[0].handle.mux.served is False
        assert (await _code(stub.GetTask(_get("x"))))[0] == grpc.StatusCode.UNAUTHENTICATED
        assert upstream.breaker.state == "closed"
    finally:
        await upstream.close()
        await server.stop(None)


async def test_a_stopping_server_is_not_held_by_an_idle_stream() -> None:
    """``serve`` stops at once when no call is running, even with a caller's stream open (its grace is for
    running calls)."""
    stop = asyncio.Event()
    bound: list[int] = []
    spec = GrpcService(name="muxtest", settings=_Settings(probe_interval_s=0.5, shutdown_grace_s=3.0),
                       register=[lambda s: tasks_pb2_grpc.add_TaskServiceServicer_to_server(_Tasks(), s)],
                       service_names=[SERVICE])
    served = asyncio.create_task(serve(spec, stop=stop, bound_port=bound))
    while not bound:  # noqa: ASYNC110 - serve() reports its port through the list
        await asyncio.sleep(0.01)
    upstream = _upstream(bound[0])
    try:
        stub = upstream.stub(tasks_pb2_grpc.TaskServiceStub)
        assert (await stub.GetTask(_get("t"), metadata=testing.metadata("u"))).task_id == "t:u"
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(served, 10)
        assert time.monotonic() - started < 2.5  # announcer and cleanups take up to ~1 s; not the 3 s grace
    finally:
        await upstream.close()
