"""An upstream service as its callers see it: instances from the registry's watch, a balancer, and the
protection around every call. This module does the I/O; the decisions live in ``balancing`` and in
``resilience.breaker`` / ``outlier`` / ``budget`` (no I/O, tested with a fake clock).

Per call (``await upstream.stub(AgentServiceStub).GetAgent(request, metadata=..., timeout=...)``):

1. breaker: open -> ``UpstreamUnavailable`` at once (UNAVAILABLE, ``retry-after`` in the trailers, the
   upstream named in the details); half-open lets a bounded number of probes through;
2. the concurrency cap (``max_concurrent``): above it -> ``UpstreamUnavailable`` too;
3. a deadline always (``timeout_s`` when the caller gave none), sent along as ``grpc-timeout``, and never
   more than what is left of the served call this one is made in (``sutazai_runtime.deadlines``);
4. the instance: the strategy's pick among passing, non-ejected instances;
5. idempotent methods (``Get*``, ``List*``, ...) are retried on *another* instance after UNAVAILABLE or a
   per-try timeout, within the retry budget and the call's deadline;
6. the verdict goes to the breaker (no instance at all counts as a failure of the upstream) and the
   instance's outlier detector: UNAVAILABLE, DEADLINE_EXCEEDED,
   INTERNAL, UNKNOWN are failures unless the service tagged the error as its own (``sutazai-error``
   trailer); a cancelled call is no verdict. Streams are judged by how they start and how they end.

Hot path: stubs and their method callables are made once per instance, the instance set is an
in-memory list replaced by the registry watch, no task is spawned per call.

Observability, in line as well: each unary call's latency (retries included) goes to
``sutazai_upstream_call_seconds{upstream,method}``; while tracing is on (``telemetry.TRACER``), a unary call
is a CLIENT span and every call (streams too) carries the current trace context as ``traceparent`` metadata
(none when the work is not recorded and no client sent one: ``telemetry.decide``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc
from opentelemetry.trace import SpanKind

from sutazai_runtime import deadlines, telemetry
from sutazai_runtime.balancing import Endpoint, make_strategy
from sutazai_runtime.discovery.model import Instance
from sutazai_runtime.discovery.registry import Registry
from sutazai_runtime.grpc_client import CHANNEL_OPTIONS
from sutazai_runtime.multiplex import MultiplexedStream, unary_methods
from sutazai_runtime.resilience import metrics
from sutazai_runtime.resilience.breaker import BreakerPolicy, CircuitBreaker
from sutazai_runtime.resilience.budget import RetryBudget
from sutazai_runtime.resilience.outlier import OutlierDetector, OutlierPolicy

log = logging.getLogger(__name__)

FAILURES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
DOMAIN_ERROR_KEY = "sutazai-error"
T = TypeVar("T")
IDEMPOTENT_PREFIXES = ("Get", "List", "Search", "Check", "Resolve", "Watch", "Health")


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    strategy: str = "p2c_peak_ewma"
    timeout_s: float = 10.0  # the deadline of a call that names none
    per_try_timeout_s: float | None = None  # one attempt of an idempotent unary call; None: the whole deadline
    max_concurrent: int = 1000
    max_attempts: int = 3
    retry_ratio: float = 0.2
    retry_min_concurrent: int = 3
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    outlier: OutlierPolicy = field(default_factory=OutlierPolicy)
    idempotent_prefixes: tuple[str, ...] = IDEMPOTENT_PREFIXES
    close_grace_s: float = 10.0  # a departed instance's channel stays this long for calls still on it
    # unary methods sent as messages on one long-lived stream per instance (``sutazai_runtime.multiplex``):
    # the hot ones, where a new call's set-up is a good part of the call
    multiplexed: frozenset[str] = frozenset()


class UpstreamUnavailable(grpc.aio.AioRpcError):
    """Refused before leaving: the breaker is open, the cap is reached, or no instance is known."""

    def __init__(self, upstream: str, reason: str, detail: str, retry_after_s: float = 1.0) -> None:
        retry_after = str(max(1, math.ceil(retry_after_s)))
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
            grpc.aio.Metadata(("retry-after", retry_after), ("sutazai-upstream", upstream),
                              ("sutazai-reason", reason)),
            details=detail,
        )
        self.upstream = upstream
        self.reason = reason
        self.retry_after = retry_after


class DeadlinePassed(grpc.aio.AioRpcError):
    """The served call this one would be made for has no time left: DEADLINE_EXCEEDED, nothing is sent."""

    def __init__(self, upstream: str) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(),
                         grpc.aio.Metadata(("sutazai-upstream", upstream), ("sutazai-reason", "caller_deadline")),
                         details=f"the caller's deadline passed before calling {upstream}")
        self.upstream = upstream


class _Handle:
    """What the I/O layer keeps per endpoint: its channel, its stub and the callables made from it."""

    __slots__ = ("calls", "cancelled", "channel", "failed", "instance", "multiplexed", "mux", "ok", "stubs")

    def __init__(self, upstream: str, instance: Instance, multiplexed: frozenset[str] = frozenset()) -> None:
        self.instance = instance
        self.channel = grpc.aio.insecure_channel(instance.target, options=CHANNEL_OPTIONS)
        self.multiplexed = multiplexed
        self.mux: MultiplexedStream | None = None
        self.stubs: dict[type, Any] = {}
        self.calls: dict[tuple[type, str], Any] = {}
        self.ok = metrics.CALLS.labels(upstream, instance.id, "ok")
        self.failed = metrics.CALLS.labels(upstream, instance.id, "failure")
        self.cancelled = metrics.CALLS.labels(upstream, instance.id, "cancelled")

    def stub(self, stub_class: type) -> Any:
        found = self.stubs.get(stub_class)
        if found is None:
            found = self.stubs[stub_class] = stub_class(self.channel)
        return found

    def call(self, stub_class: type, method: str) -> Any:
        key = (stub_class, method)
        found = self.calls.get(key)
        if found is None:
            carried = unary_methods(stub_class).get(method) if method in self.multiplexed else None
            if carried is not None:
                if self.mux is None:
                    self.mux = MultiplexedStream(self.channel, self.instance.target)
                found = self.calls[key] = self.mux.method(*carried, getattr(self.stub(stub_class), method))
            else:
                found = self.calls[key] = getattr(self.stub(stub_class), method)
        return found


def _is_failure(exc: grpc.aio.AioRpcError) -> bool:
    if exc.code() not in FAILURES:
        return False
    return not any(key == DOMAIN_ERROR_KEY for key, _ in (exc.trailing_metadata() or ()))


class Upstream:
    def __init__(
        self, name: str, *, registry: Registry | None = None,
        targets: Sequence[str] = (), policy: UpstreamPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or UpstreamPolicy()
        self._clock = clock
        self.strategy = make_strategy(self.policy.strategy)
        self.breaker = CircuitBreaker(name, self.policy.breaker, on_transition=metrics.breaker_transition)
        metrics.BREAKER_STATE.labels(name).set(0)
        self.outliers = OutlierDetector(name, self.policy.outlier)
        self.budget = RetryBudget(self.policy.retry_ratio, self.policy.retry_min_concurrent)
        self.endpoints: list[Endpoint] = []
        self._by_id: dict[str, Endpoint] = {}
        self.in_flight = 0
        self._closers: set[asyncio.Task[None]] = set()
        metrics.IN_FLIGHT.labels(name).set_function(lambda: self.in_flight)
        metrics.INSTANCES.labels(name).set_function(lambda: len(self.endpoints))
        self._kinds: dict[tuple[type, str], bool] = {}  # (stub class, method) -> is server-streaming
        self._template_channel: grpc.aio.Channel | None = None
        self._stubs: dict[type, Any] = {}
        self._observed: dict[tuple[type, str], tuple[Any, str, dict[str, str]]] = {}
        if registry is not None:
            registry.subscribe(name, self.set_instances)
        elif targets:
            self.set_instances([Instance(id=f"{name}@{t}", name=name, address=t.rpartition(":")[0],
                                         port=int(t.rpartition(":")[2])) for t in targets])

    # --- the instance set (the registry's watch calls this) ---------------------------------------------
    def set_instances(self, instances: Sequence[Instance]) -> None:
        wanted = {i.id: i for i in instances if i.passing}
        for instance_id in [i for i in self._by_id if i not in wanted]:
            self._retire(self._by_id.pop(instance_id))
        for instance_id, instance in wanted.items():
            current = self._by_id.get(instance_id)
            if current is not None and current.handle.instance.target == instance.target:
                current.weight = instance.weight
                current.handle.instance = instance
                continue
            if current is not None:
                self._retire(current)
            self._by_id[instance_id] = Endpoint(instance_id, instance.target, instance.weight,
                                                handle=_Handle(self.name, instance, self.policy.multiplexed))
        self.endpoints = sorted(self._by_id.values(), key=lambda e: e.id)

    def _retire(self, endpoint: Endpoint) -> None:
        """Close a departed instance's channel once its calls had time to end."""
        channel, mux = endpoint.handle.channel, endpoint.handle.mux

        async def close() -> None:
            if mux is not None:  # its stream ends once the calls on it are answered
                await mux.close(self.policy.close_grace_s)
            await channel.close(grace=self.policy.close_grace_s)

        try:
            task = asyncio.get_running_loop().create_task(close())
        except RuntimeError:
            return
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def instances(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [
            {"id": e.id, "address": e.target, "in_flight": e.in_flight, "ewma_ms": round(e.ewma_s * 1000, 3),
             "weight": e.weight, "ejected": e.ejected(now), "ejections": e.ejections,
             "ejected_for_s": round(max(0.0, e.ejected_until - now), 1)}
            for e in self.endpoints
        ]

    # --- choosing ------------------------------------------------------------------------------------------
    def _pick(self, key: str | None, tried: set[str] | None) -> Endpoint | None:
        endpoints = self.endpoints
        if not endpoints:
            return None
        now = self._clock()
        candidates = [e for e in endpoints if not e.ejected(now) and (not tried or e.id not in tried)]
        if len(candidates) > 1:  # prefer channels that are not known to be failing to connect
            connectable = [e for e in candidates if e.handle.channel.get_state(False)
                           is not grpc.ChannelConnectivity.TRANSIENT_FAILURE]
            candidates = connectable or candidates
        if not candidates:
            candidates = [e for e in endpoints if not tried or e.id not in tried]
            if not candidates:
                return None
        return candidates[0] if len(candidates) == 1 else self.strategy.pick(candidates, key, now)

    def idempotent(self, method: str) -> bool:
        return method.startswith(self.policy.idempotent_prefixes)

    def _admit(self) -> None:
        if not self.breaker.acquire():
            metrics.REJECTED.labels(self.name, "breaker_open").inc()
            wait = self.breaker.retry_after_s()
            raise UpstreamUnavailable(self.name, "breaker_open",
                                      f"circuit breaker for {self.name} is open; retry in {math.ceil(wait)} s",
                                      wait or 1.0)
        if self.in_flight >= self.policy.max_concurrent:
            self.breaker.release()
            metrics.REJECTED.labels(self.name, "overflow").inc()
            raise UpstreamUnavailable(self.name, "overflow",
                                      f"{self.name} has {self.in_flight} calls in flight (the cap)")

    def _verdict(self, endpoint: Endpoint | None, exc: grpc.aio.AioRpcError | None, *, final: bool = True) -> None:
        """An attempt's outcome goes to its instance's outlier detector; the call's final outcome (after any
        retries) goes to the upstream's breaker."""
        now = self._clock()
        if exc is None or not _is_failure(exc):
            if final:
                self.breaker.record_success()
            if endpoint is not None:
                self.outliers.success(endpoint, now)
                endpoint.handle.ok.inc()
            return
        if final:
            self.breaker.record_failure()
        if endpoint is not None:
            endpoint.handle.failed.inc()
            if self.outliers.failure(endpoint, now, self.endpoints):
                metrics.EJECTIONS.labels(self.name, endpoint.id).inc()

    def health_checked(self, instance_id: str, healthy: bool, error: str = "") -> None:
        """The result of an active health check of one instance (the gateway's monitor): a failure ejects it
        at once (within the outlier detector's limits), a success ends such an ejection."""
        endpoint = self._by_id.get(instance_id)
        if endpoint is None:
            return
        now = self._clock()
        if healthy:
            self.outliers.check_passed(endpoint, now)
        elif self.outliers.eject(endpoint, now, self.endpoints, f"health check failed: {error}"[:200],
                                 by_check=True):
            metrics.EJECTIONS.labels(self.name, endpoint.id).inc()

    def _no_instance(self) -> UpstreamUnavailable:
        metrics.REJECTED.labels(self.name, "no_instance").inc()
        return UpstreamUnavailable(self.name, "no_instance", f"no instance of {self.name} is available")

    # --- calls ---------------------------------------------------------------------------------------------
    def stub(self, stub_class: type[T]) -> T:
        """A stub-like object of ``stub_class`` whose every call is balanced and protected; made once."""
        found = self._stubs.get(stub_class)
        if found is None:
            found = self._stubs[stub_class] = BalancedStub(self, stub_class)
        return cast(T, found)

    def plain_stubs(self, stub_class: type[T]) -> list[tuple[str, T]]:
        """(instance id, stub) for every instance, without protection (health checks of each instance)."""
        return [(e.id, e.handle.stub(stub_class)) for e in self.endpoints]

    def _observation(self, stub_class: type, method: str) -> tuple[Any, str, dict[str, str]]:
        """(latency histogram child, span name, span attributes) of a method, made once."""
        found = self._observed.get((stub_class, method))
        if found is None:
            # generated stubs live in <proto package>.<file>_pb2_grpc and are named <Service>Stub
            service = f"{stub_class.__module__.rpartition('.')[0]}.{stub_class.__name__.removesuffix('Stub')}"
            found = self._observed[stub_class, method] = (
                metrics.CALL_SECONDS.labels(self.name, method), f"{service}/{method}",
                {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method, "sutazai.upstream": self.name})
        return found

    async def unary(self, stub_class: type, method: str, request: Any, *,
                    timeout: float | None = None,  # noqa: ASYNC109 (the gRPC keyword, passed on as a deadline)
                    metadata: Any = None, balance_key: str | None = None, **kwargs: Any) -> Any:
        latency, span_name, attributes = self._observation(stub_class, method)
        started = time.perf_counter()
        try:
            if telemetry.TRACER is None:
                return await self._unary(stub_class, method, request, timeout=timeout, metadata=metadata,
                                         balance_key=balance_key, **kwargs)
            passed = telemetry.pass_on()
            if passed is not None:  # not recorded: no client span, the caller's decision travels on (if any)
                return await self._unary(stub_class, method, request, timeout=timeout,
                                         metadata=telemetry.with_trace_metadata(metadata, passed),
                                         balance_key=balance_key, **kwargs)
            with telemetry.TRACER.start_as_current_span(span_name, kind=SpanKind.CLIENT, attributes=attributes):
                return await self._unary(stub_class, method, request, timeout=timeout,
                                         metadata=telemetry.with_trace_metadata(metadata),
                                         balance_key=balance_key, **kwargs)
        finally:
            latency.observe(time.perf_counter() - started)

    async def _unary(self, stub_class: type, method: str, request: Any, *,
                     timeout: float | None = None,  # noqa: ASYNC109 (the gRPC keyword, passed on as a deadline)
                     metadata: Any = None, balance_key: str | None = None, **kwargs: Any) -> Any:
        budget = self._budget_s(timeout)
        self._admit()
        idempotent = self.idempotent(method)
        now = self._clock()
        deadline = now + budget
        per_try = self.policy.per_try_timeout_s if idempotent else None
        self.in_flight += 1
        self.budget.active_requests += 1
        tried: set[str] | None = None
        attempt = 0
        retrying = False
        try:
            while True:
                attempt += 1
                endpoint = self._pick(balance_key, tried)
                if endpoint is None:  # the whole upstream is gone: that is its failure, not the caller's
                    self.breaker.record_failure()
                    raise self._no_instance()
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self.breaker.release()
                    raise UpstreamUnavailable(self.name, "deadline", f"the deadline for {self.name} passed")
                attempt_timeout = min(remaining, per_try) if per_try else remaining
                endpoint.start(self._clock())
                started = time.perf_counter()
                try:
                    reply = await endpoint.handle.call(stub_class, method)(
                        request, timeout=attempt_timeout, metadata=metadata, **kwargs)
                except grpc.aio.AioRpcError as exc:
                    endpoint.observe(time.perf_counter() - started, self._clock())
                    endpoint.in_flight -= 1
                    if exc.code() == grpc.StatusCode.CANCELLED:
                        self.breaker.release()
                        endpoint.handle.cancelled.inc()
                        raise
                    if (idempotent and exc.code() in RETRYABLE and _is_failure(exc)
                            and attempt < self.policy.max_attempts and deadline - self._clock() > 0.001
                            and len(self.endpoints) > 1):
                        tried = tried or set()
                        tried.add(endpoint.id)
                        if self._pick(balance_key, tried) is not None and self.budget.can_retry():
                            self._verdict(endpoint, exc, final=False)
                            if not retrying:
                                retrying = True
                                self.budget.active_retries += 1
                            self.budget.retries += 1
                            metrics.RETRIES.labels(self.name).inc()
                            continue
                    self._verdict(endpoint, exc)
                    raise
                except BaseException:  # cancelled by the caller: no verdict
                    endpoint.in_flight -= 1
                    self.breaker.release()
                    endpoint.handle.cancelled.inc()
                    raise
                endpoint.observe(time.perf_counter() - started, self._clock())
                endpoint.in_flight -= 1
                self._verdict(endpoint, None)
                return reply
        finally:
            self.in_flight -= 1
            self.budget.active_requests -= 1
            if retrying:
                self.budget.active_retries -= 1

    def _budget_s(self, timeout: float | None) -> float:
        """The call's deadline in seconds from now: the caller's ``timeout`` (else the policy's), never more than
        what is left of the served call this one is made in (``deadlines``); that one already passed ->
        DEADLINE_EXCEEDED at once, without a verdict on the upstream."""
        budget = timeout if timeout is not None else self.policy.timeout_s
        left = deadlines.remaining_s()
        if left is not None:
            if left <= 0:
                metrics.REJECTED.labels(self.name, "caller_deadline").inc()
                raise DeadlinePassed(self.name)
            budget = min(budget, left)
        return budget

    def stream(self, stub_class: type, method: str, request: Any, *, timeout: float | None = None,
               metadata: Any = None, balance_key: str | None = None, **kwargs: Any) -> BalancedStream:
        if telemetry.TRACER is not None:  # the stream's server span is a child of the caller's current span
            metadata = telemetry.with_trace_metadata(metadata, telemetry.pass_on())
        return BalancedStream(self, stub_class, method, request, self._budget_s(timeout), metadata, balance_key,
                              kwargs)

    def is_stream(self, stub_class: type, method: str) -> bool:
        kind = self._kinds.get((stub_class, method))
        if kind is None:
            template = next(iter(self._by_id.values()), None)
            if template is None:  # no instance yet: a stub on a channel that never connects tells the kind
                if self._template_channel is None:
                    self._template_channel = grpc.aio.insecure_channel("127.0.0.1:9")
                callable_ = getattr(stub_class(self._template_channel), method)
            else:
                callable_ = template.handle.call(stub_class, method)
            kind = self._kinds[stub_class, method] = isinstance(callable_, grpc.aio.UnaryStreamMultiCallable)
        return kind

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        return {
            **self.breaker.snapshot(),
            "in_flight": self.in_flight, "max_concurrent": self.policy.max_concurrent,
            "strategy": self.strategy.name, "instances": len(self.endpoints),
            "ejected_instances": [e.id for e in self.endpoints if e.ejected(now)],
            "retries": self.budget.retries, "retry_budget_exhausted": self.budget.exhausted,
        }

    async def close(self) -> None:
        for endpoint in self.endpoints:
            self._retire(endpoint)
        self.endpoints = []
        self._by_id.clear()
        if self._template_channel is not None:
            await self._template_channel.close(grace=None)
        if self._closers:
            await asyncio.wait(list(self._closers), timeout=1.0)


class BalancedStream:
    """A server-streaming call through the upstream: ``read()`` / ``async for`` / ``cancel()`` like a
    ``grpc.aio.UnaryStreamCall``. The instance is chosen and the breaker asked at the first read; an
    idempotent stream failing with UNAVAILABLE before its first message is tried on another instance."""

    def __init__(self, upstream: Upstream, stub_class: type, method: str, request: Any, timeout: float,
                 metadata: Any, balance_key: str | None, kwargs: dict[str, Any]) -> None:
        self._upstream = upstream
        self._stub_class = stub_class
        self._method = method
        self._request = request
        self._timeout = timeout
        self._metadata = metadata
        self._key = balance_key
        self._kwargs = kwargs
        self._call: Any = None
        self._endpoint: Endpoint | None = None
        self._started = 0.0
        self._first = False
        self._open = False  # counted in flight, verdict pending

    def _finish(self, exc: grpc.aio.AioRpcError | None, *, verdict: bool = True) -> None:
        if not self._open:
            return
        self._open = False
        upstream, endpoint = self._upstream, self._endpoint
        upstream.in_flight -= 1
        if endpoint is not None:
            endpoint.in_flight -= 1
        if verdict:
            upstream._verdict(endpoint, exc)
        else:
            upstream.breaker.release()
            if endpoint is not None:
                endpoint.handle.cancelled.inc()

    async def _start(self) -> Any:
        upstream = self._upstream
        upstream._admit()
        upstream.in_flight += 1
        self._open = True
        tried: set[str] = set()
        while True:
            endpoint = upstream._pick(self._key, tried)
            if endpoint is None:
                self._open = False
                upstream.in_flight -= 1
                upstream.breaker.record_failure()
                raise upstream._no_instance()
            self._endpoint = endpoint
            endpoint.start(upstream._clock())
            self._started = time.perf_counter()
            self._call = endpoint.handle.call(self._stub_class, self._method)(
                self._request, timeout=self._timeout, metadata=self._metadata, **self._kwargs)
            try:
                message = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                if (exc.code() == grpc.StatusCode.UNAVAILABLE and _is_failure(exc)
                        and upstream.idempotent(self._method) and len(tried) + 1 < upstream.policy.max_attempts
                        and upstream.budget.can_retry()):
                    tried.add(endpoint.id)
                    if upstream._pick(self._key, tried) is not None:
                        endpoint.in_flight -= 1
                        upstream._verdict(endpoint, exc, final=False)
                        metrics.RETRIES.labels(upstream.name).inc()
                        continue
                self._end(exc)
                raise
            except BaseException:
                self._finish(None, verdict=False)
                raise
            return message

    def _end(self, exc: grpc.aio.AioRpcError | None) -> None:
        if self._endpoint is not None:
            self._endpoint.observe(time.perf_counter() - self._started, self._upstream._clock())
        if exc is not None and exc.code() == grpc.StatusCode.CANCELLED:
            self._finish(None, verdict=False)
        else:
            self._finish(exc)

    async def read(self) -> Any:
        if self._call is None:
            message = await self._start()
        else:
            try:
                message = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                self._end(exc)
                raise
            except BaseException:
                self._finish(None, verdict=False)
                raise
        if message is grpc.aio.EOF:
            self._end(None)
        elif not self._first and self._endpoint is not None:
            self._first = True  # the time to the first message is the latency the balancer learns from
            self._endpoint.observe(time.perf_counter() - self._started, self._upstream._clock())
        return message

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (message := await self.read()) is not grpc.aio.EOF:
            yield message

    def cancel(self) -> bool:
        """Cancel the call: the client went away, which is no verdict on the upstream."""
        self._finish(None, verdict=False)
        return bool(self._call.cancel()) if self._call is not None else False

    def done(self) -> bool:
        return self._call is not None and self._call.done()


class _UnaryMethod:
    __slots__ = ("_method", "_stub_class", "_upstream")

    def __init__(self, upstream: Upstream, stub_class: type, method: str) -> None:
        self._upstream = upstream
        self._stub_class = stub_class
        self._method = method

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        return self._upstream.unary(self._stub_class, self._method, request, **kwargs)


class _StreamMethod(_UnaryMethod):
    __slots__ = ()

    def __call__(self, request: Any, **kwargs: Any) -> BalancedStream:
        return self._upstream.stream(self._stub_class, self._method, request, **kwargs)


class BalancedStub:
    """Looks like the generated stub (``stub.GetAgent(request, metadata=..., timeout=...)``); every call goes
    through the upstream's balancing and protection. Method objects are made once and cached."""

    def __init__(self, upstream: Upstream, stub_class: type) -> None:
        self._upstream = upstream
        self._stub_class = stub_class

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        upstream, stub_class = self._upstream, self._stub_class
        kind = _StreamMethod if upstream.is_stream(stub_class, method) else _UnaryMethod
        found: _UnaryMethod = kind(upstream, stub_class, method)
        setattr(self, method, found)
        return found


@contextlib.asynccontextmanager
async def upstream_set(upstreams: Sequence[Upstream]) -> AsyncIterator[None]:
    """Close every upstream on exit."""
    try:
        yield
    finally:
        await asyncio.gather(*(u.close() for u in upstreams), return_exceptions=True)


def stub_of(target: Upstream | grpc.aio.Channel, stub_class: type[T]) -> T:
    """``stub_class`` over an ``Upstream`` (balanced, protected) or over a plain channel (tests, tools)."""
    if isinstance(target, Upstream):
        return target.stub(stub_class)
    return stub_class(target)  # type: ignore[call-arg]
