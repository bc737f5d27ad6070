"""Unary calls carried as messages on one long-lived gRPC stream (``sutazai.common.v1.Multiplex/Call``;
docs/grpc-multiplex.md).

Why: on a small machine a new gRPC call costs about twice a message exchange on a stream that is already
open (measured with grpc.aio at one call in flight every 15 ms: ~1.3 ms against ~0.7 ms of wall time). A new
call is a new HTTP/2 stream with its headers, call objects in the core and in Python, and the handler's
set-up on the server; gRPC's own performance guide recommends streams for a long-lived flow of calls for this
reason. Our hot path (a memory search: gateway -> memory -> chat) pays it twice per request.

What stays the same: the server runs each carried call with the handler the unary call would get (the one
``grpc_observe`` wrapped: metrics, spans, the incoming deadline), after the same identity check as
``IdentityInterceptor`` (``identity.caller_of``) on the metadata the call carries; errors come back as the
unary call's status code, details and trailing metadata, raised on the caller's side as the same
``grpc.aio.AioRpcError``. So ``Upstream`` (balancing, breaker, retries, outlier detection) treats a carried
call like any other; it carries the methods its policy names (``UpstreamPolicy.multiplexed``) and opens one
stream per instance, on that instance's channel.

The server side (``MultiplexServicer``) is registered by ``grpc_server.serve`` on every service and serves
the unary methods registered on the same server. A stream that ends (the server stopped, the connection
broke) fails the calls still waiting on it with UNAVAILABLE; the next call opens a new stream. A stopping
server refuses new carried calls with UNAVAILABLE, as it refuses new unary calls, and ends each stream once
its running calls are answered. An instance without the service (an older release during a rolling upgrade)
is called unary from then on, through the same channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
from sutazai.common.v1 import common_pb2, common_pb2_grpc

from sutazai_runtime.identity import IdentityRefused, ProofVerifier, caller_of, set_caller

log = logging.getLogger(__name__)

CALL_PATH = "/sutazai.common.v1.Multiplex/Call"
MAX_IN_FLIGHT = 1000  # carried calls one stream may have running on the server at once


# --- the server ------------------------------------------------------------------------------------------------
class CarriedCallContext:
    """The ``grpc.aio.ServicerContext`` a handler sees for a carried call: its metadata, deadline and peer,
    and ``abort`` / trailing metadata / codes that end up in the call's reply. Only this subset: a handler that
    needs more (initial metadata, auth context, done callbacks) fails with UNKNOWN when carried, so carry only
    methods whose handler keeps to it (every unary handler of ours does today)."""

    __slots__ = ("_code", "_deadline", "_details", "_metadata", "_peer", "_trailing")

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout_s: float, peer: str) -> None:
        self._metadata = metadata
        self._deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: Iterable[tuple[str, str]] = ()) -> None:
        self._code, self._details = code, details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Iterable[tuple[str, str]]) -> None:
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False


def _reply(call_id: int, code: grpc.StatusCode, details: str,
           trailing: Iterable[tuple[str, str]] = ()) -> common_pb2.StreamedReply:
    return common_pb2.StreamedReply(id=call_id, code=code.value[0], details=details, trailing_metadata=[
        common_pb2.MetadataEntry(key=k, value=v) for k, v in trailing])


class MultiplexServicer(common_pb2_grpc.MultiplexServicer):
    """Serves calls carried on a ``Multiplex/Call`` stream with ``handlers`` ("/pkg.Service/Method" -> the
    observed unary handler), each after the identity check of its own metadata."""

    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler], verifier: ProofVerifier) -> None:
        self._handlers = handlers
        self._verifier = verifier
        self._draining = False
        self._streams: dict[asyncio.Event, set[asyncio.Task[None]]] = {}  # each open stream: its end, its calls

    def drain(self) -> None:
        """The server is stopping: calls that arrive from now on are refused with UNAVAILABLE (the caller tries
        another instance, as a new unary call would be refused); those running finish within the grace, and
        each stream ends once it has none (an idle stream would otherwise hold the server for all its grace)."""
        self._draining = True
        for idle, running in list(self._streams.items()):
            if not running:
                idle.set()

    async def Call(self, request_iterator: AsyncIterator[common_pb2.StreamedCall],
                   context: grpc.aio.ServicerContext) -> None:
        running: set[asyncio.Task[None]] = set()
        cancellable: dict[int, asyncio.Task[None]] = {}  # calls a cancel message may still stop
        room = asyncio.Semaphore(MAX_IN_FLIGHT)
        writing = asyncio.Lock()  # a stream takes one write at a time
        peer = context.peer()

        async def send(reply: common_pb2.StreamedReply) -> None:
            async with writing:
                await context.write(reply)

        async def serve_one(call: common_pb2.StreamedCall) -> None:
            try:
                reply = await self._run(call, peer)
            except asyncio.CancelledError:  # the caller gave up (a cancel message) or the stream ended
                return
            finally:
                cancellable.pop(call.id, None)
                room.release()
            # not cancellable from here: a write cancelled half-way would leave the stream unusable
            try:
                await send(reply)
            except Exception:  # the stream is gone: the caller sees that, not this call's reply
                log.debug("could not send the reply of a carried call", exc_info=True)

        idle = asyncio.Event()  # the server is stopping and this stream has no call running: it may end

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            if self._draining and not running:
                idle.set()

        def start(call: common_pb2.StreamedCall) -> None:
            task = asyncio.create_task(serve_one(call))
            running.add(task)
            task.add_done_callback(finished)
            if not task.done():
                cancellable[call.id] = task

        async def read() -> None:
            async for call in request_iterator:
                if call.cancel:
                    if (task := cancellable.get(call.id)) is not None:
                        task.cancel()
                    continue
                if self._draining:
                    await send(_reply(call.id, grpc.StatusCode.UNAVAILABLE, "the server is stopping"))
                    continue
                await room.acquire()
                start(call)

        # Reading runs beside this handler so that a stopping server can end an idle stream by returning
        # (an OK status; the caller opens a new stream elsewhere): cancelling the handler would leave the call
        # open until the server's grace ran out.
        reading = asyncio.create_task(read())
        ending = asyncio.create_task(idle.wait())
        self._streams[idle] = running
        try:
            await asyncio.wait((reading, ending), return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                reading.result()  # the stream broke: raise as the read did
                while running:  # the caller is done writing: finish what it asked for, then end the stream
                    await asyncio.gather(*running, return_exceptions=True)
        finally:
            self._streams.pop(idle, None)
            for task in (reading, ending, *running):
                task.cancel()

    async def _run(self, call: common_pb2.StreamedCall, peer: str) -> common_pb2.StreamedReply:
        handler = self._handlers.get(call.method)
        if handler is None:
            return _reply(call.id, grpc.StatusCode.UNIMPLEMENTED,
                          f"{call.method or '(no method)'} is not a unary method of this server")
        metadata = tuple((m.key, m.value) for m in call.metadata)
        try:
            identity = caller_of(self._verifier, metadata)
        except IdentityRefused as exc:
            return _reply(call.id, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        set_caller(identity)  # this call's task only: each carried call runs in a task of its own
        context = CarriedCallContext(metadata, call.timeout_s, peer)
        try:
            request = handler.request_deserializer(call.request) if handler.request_deserializer else call.request
        except Exception as exc:
            return _reply(call.id, grpc.StatusCode.INTERNAL, f"could not parse the request: {exc}")
        try:
            if call.timeout_s > 0:
                async with asyncio.timeout(call.timeout_s):
                    response = await handler.unary_unary(request, context)
            else:
                response = await handler.unary_unary(request, context)
        except grpc.aio.AbortError:
            return _reply(call.id, context.code() or grpc.StatusCode.UNKNOWN, context.details(),
                          context.trailing_metadata())
        except TimeoutError:
            return _reply(call.id, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        except Exception:
            log.exception("a carried call of %s failed", call.method)
            return _reply(call.id, grpc.StatusCode.UNKNOWN, "Unexpected error in the handler")
        code = context.code()
        if code is not None and code is not grpc.StatusCode.OK:
            return _reply(call.id, code, context.details(), context.trailing_metadata())
        serialized = handler.response_serializer(response) if handler.response_serializer else response
        return common_pb2.StreamedReply(id=call.id, response=serialized, trailing_metadata=[
            common_pb2.MetadataEntry(key=k, value=v) for k, v in context.trailing_metadata()])


# --- the client ------------------------------------------------------------------------------------------------
def _error(code: grpc.StatusCode, details: str, trailing: Iterable[tuple[str, str]] = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=details)


class NotServed(Exception):
    """The server has no ``Multiplex`` service (an older release during a rolling upgrade): the call was not
    made and goes as a unary call instead."""


class MultiplexedStream:
    """The client end: one ``Multiplex/Call`` stream on ``channel``, opened on first use and again after it
    ended; calls are matched to replies by id."""

    def __init__(self, channel: grpc.aio.Channel, target: str = "") -> None:
        self._target = target or "the server"
        self._open = channel.stream_stream(CALL_PATH, request_serializer=common_pb2.StreamedCall.SerializeToString,
                                           response_deserializer=common_pb2.StreamedReply.FromString)
        self._call: grpc.aio.StreamStreamCall | None = None
        self._pending: dict[int, asyncio.Future[common_pb2.StreamedReply]] = {}
        self._ids = itertools.count(1)
        self._writing = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.served = True  # False once the server answered that it has no Multiplex service

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def method(self, path: str, request_serializer: Callable[[Any], bytes],
               response_deserializer: Callable[[bytes], Any], unary: Callable[..., Any]) -> Callable[..., Any]:
        """A callable like a unary stub method: ``await m(request, timeout=..., metadata=...)``; ``unary`` (the
        stub's own method) when the server does not serve ``Multiplex``."""
        async def call(request: Any, *, timeout: float | None = None,  # noqa: ASYNC109 (gRPC's keyword)
                       metadata: Any = None, **kwargs: Any) -> Any:
            if self.served:
                try:
                    reply = await self.call(path, request_serializer(request), timeout=timeout, metadata=metadata)
                    return response_deserializer(reply)
                except NotServed:
                    log.info("%s has no Multiplex service: calling %s as a unary method", self._target, path)
            return await unary(request, timeout=timeout, metadata=metadata, **kwargs)
        return call

    def _stream(self) -> grpc.aio.StreamStreamCall:
        if self._closed:
            raise _error(grpc.StatusCode.UNAVAILABLE, "the channel is closing")
        if self._call is None:
            call = self._open()  # no deadline: the stream lives as long as the channel
            self._call = call
            reader = asyncio.create_task(self._read(call))
            self._background.add(reader)
            reader.add_done_callback(self._background.discard)
        return self._call

    async def call(self, path: str, request: bytes, *, timeout: float | None = None,  # noqa: ASYNC109
                   metadata: Any = None) -> bytes:
        stream = self._stream()
        call_id = next(self._ids)
        done: asyncio.Future[common_pb2.StreamedReply] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = done
        message = common_pb2.StreamedCall(
            id=call_id, method=path, request=request, timeout_s=timeout or 0.0,
            metadata=[common_pb2.MetadataEntry(key=k, value=v) for k, v in metadata or ()])
        try:
            async with asyncio.timeout(timeout):
                # shielded: a caller that gives up mid-write must not cancel the stream under everyone else's calls
                writing = asyncio.ensure_future(self._write(stream, message))
                writing.add_done_callback(_retrieve)
                await asyncio.shield(writing)
                reply = await done
        except TimeoutError:
            self._cancel(call_id)
            raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except asyncio.CancelledError:
            self._cancel(call_id)
            raise
        except grpc.aio.AioRpcError as exc:  # the write failed: the stream is broken (its reader says why)
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.served = False
                raise NotServed from exc
            raise _error(grpc.StatusCode.UNAVAILABLE, f"the stream ended: {exc.code().name}: {exc.details()}") \
                from exc
        except (grpc.aio.UsageError, asyncio.InvalidStateError) as exc:  # written after the stream ended
            raise _error(grpc.StatusCode.UNAVAILABLE, f"the stream ended: {exc}") from exc
        finally:
            self._pending.pop(call_id, None)
        if reply.code:
            raise _error(_CODES.get(reply.code, grpc.StatusCode.UNKNOWN), reply.details,
                         ((m.key, m.value) for m in reply.trailing_metadata))
        return reply.response

    async def _write(self, stream: grpc.aio.StreamStreamCall, message: common_pb2.StreamedCall) -> None:
        async with self._writing:
            await stream.write(message)

    def _cancel(self, call_id: int) -> None:
        """Tell the server the caller gave up on ``call_id`` (best effort, without waiting)."""
        if call_id not in self._pending or self._call is None:
            return
        stream = self._call

        async def send() -> None:
            with contextlib.suppress(Exception):
                await self._write(stream, common_pb2.StreamedCall(id=call_id, cancel=True))

        task = asyncio.get_running_loop().create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read(self, stream: grpc.aio.StreamStreamCall) -> None:
        error: Exception
        try:
            async for reply in stream:
                waiting = self._pending.get(reply.id)
                if waiting is not None and not waiting.done():
                    waiting.set_result(reply)
            error = _error(grpc.StatusCode.UNAVAILABLE, "the stream ended")
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # no Multiplex there: its calls go unary
                self.served = False
                error = NotServed()
            else:
                error = _error(grpc.StatusCode.UNAVAILABLE, f"the stream ended: {exc.code().name}: {exc.details()}")
        except asyncio.CancelledError:
            self._fail_all(stream, _error(grpc.StatusCode.UNAVAILABLE, "the stream was closed"))
            raise
        self._fail_all(stream, error)

    def _fail_all(self, stream: grpc.aio.StreamStreamCall, error: Exception) -> None:
        """Every call waiting on ``stream`` fails with ``error`` (``NotServed``: it goes unary). A new stream is
        opened only after this ran for the last one, so every pending call is one of ``stream``'s."""
        if self._call is stream:
            self._call = None
        for waiting in list(self._pending.values()):
            if not waiting.done():
                waiting.set_exception(error)

    async def close(self, grace_s: float = 0.0) -> None:
        """End the stream: with ``grace_s``, after the calls on it finished (at most that long)."""
        self._closed = True
        stream = self._call
        if stream is not None:
            with contextlib.suppress(Exception):
                if grace_s > 0:
                    async with asyncio.timeout(grace_s):
                        async with self._writing:
                            await stream.done_writing()
                        if self._pending:
                            await asyncio.wait(list(self._pending.values()))
            stream.cancel()
        for task in list(self._background):
            task.cancel()


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A shielded write whose caller left: its failure is the reader's to report, not an unretrieved error."""
    if not task.cancelled():
        task.exception()


class _Recorder:
    """A stand-in channel: a generated stub made on it tells each method's path and (de)serialisers."""

    def __init__(self) -> None:
        self.unary: dict[str, tuple[str, Any, Any]] = {}

    def unary_unary(self, path: str, request_serializer: Any = None, response_deserializer: Any = None,
                    **_: Any) -> None:
        self.unary[path.rsplit("/", 1)[-1]] = (path, request_serializer, response_deserializer)

    def __getattr__(self, name: str) -> Callable[..., None]:  # the other kinds of method: not carried
        return lambda *args, **kwargs: None


def unary_methods(stub_class: type) -> dict[str, tuple[str, Any, Any]]:
    """Method name -> (full path, request serialiser, response deserialiser) of a generated stub's unary
    methods."""
    recorder = _Recorder()
    stub_class(recorder)
    return recorder.unary
