"""gRPC channels to the upstream services, opened once in the lifespan and shared by all requests.

Each upstream has one channel without interceptors and, made once and cached, one guarded stub per
service class (``Upstream.stub``): its calls go through the upstream's circuit breaker and get the
default deadline. ``health`` and ``diagnostics`` are plain stubs (no breaker); their callers pass a
deadline on every call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc
from grpc_health.v1 import health_pb2_grpc
from sutazai.common.v1 import common_pb2_grpc
from sutazai_runtime.grpc_client import open_channel

from sutazai_gateway.breakers import CircuitBreaker, guarded_stub

T = TypeVar("T")


@dataclass(slots=True)
class Upstream:
    name: str
    address: str
    channel: grpc.aio.Channel
    health: health_pb2_grpc.HealthStub
    diagnostics: common_pb2_grpc.DiagnosticsStub
    breaker: CircuitBreaker
    default_timeout_s: float = 10.0
    _stubs: dict[type, Any] = field(default_factory=dict, repr=False)

    def stub(self, stub_class: type[T]) -> T:
        """The guarded ``stub_class`` for this upstream, made on first use and reused by every request."""
        try:
            return cast(T, self._stubs[stub_class])
        except KeyError:
            made = self._stubs[stub_class] = guarded_stub(stub_class, self.channel, self.breaker,
                                                          self.default_timeout_s)
            return made


class Upstreams:
    def __init__(
        self, addresses: dict[str, str], *, default_timeout_s: float, breaker_failures: int = 5,
        breaker_recovery_s: float = 30.0,
    ) -> None:
        self._by_name: dict[str, Upstream] = {}
        for name, address in addresses.items():
            breaker = CircuitBreaker(name, breaker_failures, breaker_recovery_s)
            channel = open_channel(address, default_timeout_s=None)  # deadlines are set per call, in line
            self._by_name[name] = Upstream(
                name, address, channel, health_pb2_grpc.HealthStub(channel),
                common_pb2_grpc.DiagnosticsStub(channel), breaker, default_timeout_s,
            )

    def __getitem__(self, name: str) -> Upstream:
        """The upstream called ``name``; KeyError for anything else."""
        return self._by_name[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_name.values())

    async def close(self) -> None:
        await asyncio.gather(*(u.channel.close(grace=None) for u in self._by_name.values()))
