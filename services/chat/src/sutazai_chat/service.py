"""Model calls with routing, failover, breakers, slots and the response cache. No gRPC here: the servicer
translates; errors are the ``errors`` tree."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from sutazai_chat import metrics
from sutazai_chat.backends import BackendCallError, BackendRejectedError, Embeddings, ModelClient
from sutazai_chat.cache import ResponseCache, is_cacheable
from sutazai_chat.errors import (
    BackendError,
    ChatError,
    InvalidRequestError,
    ModelNotFoundError,
    NoBackendAvailableError,
    OverloadedError,
)
from sutazai_chat.model_span import model_span, record_usage
from sutazai_chat.requests import ChatCall, Reply
from sutazai_chat.routing import Backend, QueueFullError, Router
from sutazai_chat.tooling import ToolCall, ToolCallDelta, assemble

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_AFTER_S = 1


class ChatService:
    def __init__(self, router: Router, cache: ResponseCache, *, queue_timeout_s: float,
                 background_wait_s: float = 2.0) -> None:
        self.router = router
        self.cache = cache
        self.queue_timeout_s = queue_timeout_s
        self.background_wait_s = background_wait_s
        self._refresh_lock = asyncio.Lock()

    # --- models -------------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Discover each backend's models (``/v1/models``, ``/api/tags``) and the loaded ones (``/api/ps``)."""
        async with self._refresh_lock:
            await asyncio.gather(*(self._refresh_one(b) for b in self.router.backends))

    async def _refresh_one(self, backend: Backend) -> None:
        if backend.spec.models:
            backend.models = set(backend.spec.models)
        elif backend.in_flight and backend.models:
            return  # busy: keep what it served a moment ago rather than queue behind its generations
        else:
            try:
                backend.models = set(await backend.client.list_models())
            except BackendCallError as exc:
                log.warning("cannot list the models of backend %s: %s", backend.name, exc)
        with contextlib.suppress(BackendCallError):
            backend.loaded = await backend.client.loaded_models() or set()

    async def resolve(self, name: str) -> str:
        try:
            return self.router.resolve(name)
        except ModelNotFoundError:
            await self.refresh()  # a model pulled since the last discovery
            return self.router.resolve(name)

    # --- chat ---------------------------------------------------------------------------------------

    async def chat(self, call: ChatCall) -> Reply:
        model = await self.resolve(call.model)
        key = self.cache.key(model, call.messages, call.params) if self._cacheable(call) else None
        if key is not None and (hit := await self._cached(key, model)) is not None:
            return hit
        started = time.perf_counter()
        backend, completion = await self._call(
            "chat", model, lambda client: client.complete(model, call.messages, call.params), call.background
        )
        duration_ms = (time.perf_counter() - started) * 1000
        reply = Reply(completion.text, model, backend.name, completion.prompt_tokens, completion.completion_tokens,
                      round(duration_ms, 3), completion.finish_reason, tool_calls=completion.tool_calls)
        self._observe("chat", reply)
        if key is not None:
            await self.cache.set(key, _to_cache(reply))
        return reply

    async def stream(self, call: ChatCall) -> AsyncIterator[str | ToolCallDelta | Reply]:
        """Tokens and tool-call pieces as they come, then the final ``Reply``. Fails over to the next backend
        only while nothing has been sent; a cancelled consumer closes the backend's stream."""
        model = await self.resolve(call.model)
        key = self.cache.key(model, call.messages, call.params) if self._cacheable(call) else None
        if key is not None and (hit := await self._cached(key, model)) is not None:
            if hit.response:
                yield hit.response
            for index, tool_call in enumerate(hit.tool_calls):
                yield ToolCallDelta(index, tool_call.id, tool_call.name, tool_call.arguments)
            yield hit
            return
        tried: set[str] = set()
        failures: list[str] = []
        full = False
        while (backend := self._pick(model, tried)) is not None:
            tried.add(backend.name)
            try:
                async with self._slot(backend, call.background):
                    started = time.perf_counter()
                    ttft = 0.0
                    text: list[str] = []
                    calls: dict[int, list[ToolCallDelta]] = {}
                    usage = (None, None)
                    finish = "stop"
                    try:
                        deltas = backend.client.stream(model, call.messages, call.params)
                        # a cancelled consumer closes the backend stream
                        with model_span("chat", model, backend.name) as span:
                            async with contextlib.aclosing(deltas):
                                async for delta in deltas:
                                    if delta.token:
                                        if not text:
                                            ttft = time.perf_counter() - started
                                            metrics.TTFT.labels(model, backend.name).observe(ttft)
                                        text.append(delta.token)
                                        yield delta.token
                                    if delta.tool_call is not None:
                                        if not text and not calls:
                                            ttft = time.perf_counter() - started
                                        calls.setdefault(delta.tool_call.index, []).append(delta.tool_call)
                                        yield delta.tool_call
                                    if delta.prompt_tokens is not None:
                                        usage = (delta.prompt_tokens, delta.completion_tokens)
                                    if delta.finish_reason:
                                        finish = delta.finish_reason
                            record_usage(span, *usage)
                    except BackendRejectedError as exc:
                        backend.breaker.record_success()
                        raise InvalidRequestError(f"backend {backend.name} refused the request: {exc}") from exc
                    except BackendCallError as exc:
                        self._failed(backend, model, "chat_stream")
                        if text or calls:
                            raise BackendError(f"backend {backend.name} failed mid-stream: {exc}") from exc
                        failures.append(f"{backend.name}: {exc}")
                        continue
                    backend.breaker.record_success()
            except QueueFullError:
                full = True
                continue
            duration_ms = (time.perf_counter() - started) * 1000
            tool_calls = assemble(calls)
            reply = Reply("".join(text), model, backend.name, usage[0] or 0, usage[1] or len(text),
                          round(duration_ms, 3), "tool_calls" if tool_calls else finish,
                          ttft_ms=round(ttft * 1000, 3), tool_calls=tool_calls)
            self._observe("chat_stream", reply)
            if key is not None:
                await self.cache.set(key, _to_cache(reply))  # only a complete stream is stored
            yield reply
            return
        self._unavailable(model, full, failures)

    async def batch(self, calls: Sequence[ChatCall | ChatError], concurrency: int) -> list[Reply | ChatError]:
        """Each item's reply or error, in order, with at most ``concurrency`` calls at a time."""
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(item: ChatCall | ChatError) -> Reply | ChatError:
            if isinstance(item, ChatError):
                return item
            async with gate:
                try:
                    return await self.chat(item)
                except ChatError as exc:
                    return exc

        return list(await asyncio.gather(*(one(item) for item in calls)))

    async def embed(self, model_name: str, inputs: Sequence[str]) -> tuple[str, str, Embeddings]:
        model = await self.resolve(model_name)
        backend, result = await self._call("embed", model, lambda client: client.embed(model, inputs))
        metrics.REQUESTS.labels("embed", model, backend.name, "ok").inc()
        return model, backend.name, result

    # --- routing, slots, breakers --------------------------------------------------------------------

    def _cacheable(self, call: ChatCall) -> bool:
        return call.use_cache and is_cacheable(call.params)

    async def _cached(self, key: str, model: str) -> Reply | None:
        started = time.perf_counter()
        found = await self.cache.get(key, model)
        metrics.CACHE.labels(model, "hit" if found else "miss").inc()
        if found is None:
            return None
        calls = [ToolCall(**c) for c in found.pop("tool_calls", ())]
        reply = Reply(**found, tool_calls=calls)
        reply.generated_rate = reply.tokens_per_second
        reply.cached = True
        reply.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        return reply

    def _pick(self, model: str, tried: set[str]) -> Backend | None:
        for backend in self.router.candidates(model, tried):
            if backend.breaker.acquire():
                return backend
            tried.add(backend.name)
        return None

    def capacity(self) -> list[dict[str, int | str]]:
        """Per served model (and per alias of it): the slots of its backends whose breaker lets calls through,
        what background calls may hold of them, and what is in use now."""
        rows: list[dict[str, int | str]] = []
        for model in self.router.served_models():
            usable = [b for b in self.router.serving(model) if b.breaker.state != "open"]
            row: dict[str, int | str] = {
                "slots": sum(b.spec.concurrency for b in usable),
                "background_slots": sum(b.background_limit for b in usable),
                "in_flight": sum(b.in_flight for b in usable),
                "background_in_flight": sum(b.background_in_flight for b in usable),
                "waiting": sum(b.waiting + b.background_waiting for b in usable),
            }
            rows += [{"model": name, **row} for name in (model, *self.router.aliases_of(model))]
        return rows

    @contextlib.asynccontextmanager
    async def _slot(self, backend: Backend, background: bool = False) -> AsyncIterator[None]:
        metrics.QUEUE_DEPTH.labels(backend.name).set(backend.waiting + backend.background_waiting + 1)
        timeout_s = self.background_wait_s if background else self.queue_timeout_s
        try:
            async with backend.slot(timeout_s, background=background):
                metrics.QUEUE_DEPTH.labels(backend.name).set(backend.waiting + backend.background_waiting)
                metrics.IN_FLIGHT.labels(backend.name).set(backend.in_flight)
                try:
                    yield
                finally:
                    backend.breaker.release()  # no verdict recorded (cancelled): free the half-open probe
                    metrics.IN_FLIGHT.labels(backend.name).set(backend.in_flight - 1)
                    metrics.BREAKER_OPEN.labels(backend.name).set(backend.breaker.state != "closed")
        except QueueFullError:
            backend.breaker.release()
            raise
        finally:
            metrics.QUEUE_DEPTH.labels(backend.name).set(backend.waiting + backend.background_waiting)

    async def _call(
        self, operation: str, model: str, fn: Callable[[ModelClient], Awaitable[T]], background: bool = False
    ) -> tuple[Backend, T]:
        tried: set[str] = set()
        failures: list[str] = []
        full = False
        while (backend := self._pick(model, tried)) is not None:
            tried.add(backend.name)
            try:
                async with self._slot(backend, background):
                    try:
                        with model_span(operation, model, backend.name) as span:
                            result = await fn(backend.client)
                            record_usage(span, getattr(result, "prompt_tokens", None),
                                         getattr(result, "completion_tokens", None))
                    except BackendRejectedError as exc:
                        backend.breaker.record_success()
                        raise InvalidRequestError(f"backend {backend.name} refused the request: {exc}") from exc
                    except BackendCallError as exc:
                        self._failed(backend, model, operation)
                        failures.append(f"{backend.name}: {exc}")
                        continue
                    backend.breaker.record_success()
                    return backend, result
            except QueueFullError:
                full = True
        self._unavailable(model, full, failures)
        raise AssertionError("unreachable")

    def _failed(self, backend: Backend, model: str, operation: str) -> None:
        backend.breaker.record_failure()
        metrics.ERRORS.labels(model, backend.name).inc()
        metrics.REQUESTS.labels(operation, model, backend.name, "error").inc()
        metrics.BREAKER_OPEN.labels(backend.name).set(backend.breaker.state != "closed")
        log.warning("backend %s failed (%s); breaker %s", backend.name, operation, backend.breaker.state)

    def _unavailable(self, model: str, full: bool, failures: list[str]) -> None:
        if full:
            raise OverloadedError(model, RETRY_AFTER_S)
        serving = self.router.serving(model)
        if failures:
            raise NoBackendAvailableError(f"every backend serving {model!r} failed: " + "; ".join(failures))
        wait = min((b.breaker.retry_after_s() for b in serving), default=0.0)
        raise NoBackendAvailableError(
            f"no backend serving {model!r} is available (circuit breakers open); retry in {wait:.0f} s"
        )

    def _observe(self, operation: str, reply: Reply) -> None:
        metrics.REQUESTS.labels(operation, reply.model, reply.backend, "ok").inc()
        metrics.DURATION.labels(operation, reply.model, reply.backend).observe(reply.duration_ms / 1000)
        metrics.TOKENS.labels(reply.model, reply.backend, "prompt").inc(reply.prompt_tokens)
        metrics.TOKENS.labels(reply.model, reply.backend, "completion").inc(reply.completion_tokens)
        if reply.tokens_per_second:
            metrics.TOKENS_PER_SECOND.labels(reply.model, reply.backend).observe(reply.tokens_per_second)


def _to_cache(reply: Reply) -> dict[str, object]:
    return {"response": reply.response, "model": reply.model, "backend": reply.backend,
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "duration_ms": reply.duration_ms, "finish_reason": reply.finish_reason, "ttft_ms": reply.ttft_ms,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls]}
