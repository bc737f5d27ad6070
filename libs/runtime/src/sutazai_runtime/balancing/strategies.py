"""Load-balancing strategies: each picks one endpoint of a non-empty list. No I/O, no clock of their own (the
caller passes ``now``, the time its endpoints' stamps are in).

- ``round_robin``, ``least_connections``, ``weighted`` (smooth weighted round robin, nginx's), ``random``;
- ``consistent_hash``: a ring of virtual nodes keyed by the call's key (the original's ``ip_hash``,
  generalised: any key; the same key keeps its instance while the set changes little);
- ``p2c_peak_ewma`` (the default, Finagle's and Linkerd's): two random candidates, the one with the lower
  peak-EWMA latency x (in flight + 1) wins, so a slow instance quickly gets little traffic.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from typing import Protocol

from sutazai_runtime.balancing.endpoint import Endpoint

STRATEGIES = ("p2c_peak_ewma", "round_robin", "least_connections", "weighted", "random", "consistent_hash")
ALIASES = {"ip_hash": "consistent_hash", "p2c": "p2c_peak_ewma", "peak_ewma": "p2c_peak_ewma"}


class Strategy(Protocol):
    name: str

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint: ...


class RoundRobin:
    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint:
        self._next = (self._next + 1) % (1 << 30)
        return endpoints[self._next % len(endpoints)]


class LeastConnections:
    name = "least_connections"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint:
        low = min(e.in_flight for e in endpoints)
        ties = [e for e in endpoints if e.in_flight == low]
        return ties[0] if len(ties) == 1 else self._rng.choice(ties)


class Weighted:
    """Smooth weighted round robin: weights 5,1,1 give a a b a c a a, never a burst to one instance."""

    name = "weighted"

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint:
        total = 0
        best = endpoints[0]
        for e in endpoints:
            e.current_weight += e.weight
            total += e.weight
            if e.current_weight > best.current_weight:
                best = e
        best.current_weight -= total
        return best


class Random:
    name = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint:
        return self._rng.choice(endpoints)


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class ConsistentHash:
    """A hash ring with ``replicas`` virtual nodes per endpoint, rebuilt when the set of ids changes.
    Without a key it falls back to round robin."""

    name = "consistent_hash"

    def __init__(self, replicas: int = 100) -> None:
        self._replicas = replicas
        self._ids: tuple[str, ...] = ()
        self._ring: list[int] = []
        self._owners: list[str] = []
        self._fallback = RoundRobin()

    def _rebuild(self, endpoints: Sequence[Endpoint]) -> None:
        points = sorted((_hash(f"{e.id}#{i}"), e.id) for e in endpoints for i in range(self._replicas * e.weight))
        self._ring = [p for p, _ in points]
        self._owners = [o for _, o in points]
        self._ids = tuple(e.id for e in endpoints)

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint:
        if not key:
            return self._fallback.pick(endpoints)
        if tuple(e.id for e in endpoints) != self._ids:
            self._rebuild(endpoints)
        index = bisect.bisect(self._ring, _hash(key)) % len(self._ring)
        owner = self._owners[index]
        return next(e for e in endpoints if e.id == owner)


class PeakEwmaP2C:
    name = "p2c_peak_ewma"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, endpoints: Sequence[Endpoint], key: str | None = None, now: float | None = None) -> Endpoint:
        n = len(endpoints)
        if n == 1:
            return endpoints[0]
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        if j >= i:
            j += 1
        a, b = endpoints[i], endpoints[j]
        return a if a.cost(now) <= b.cost(now) else b


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    name = ALIASES.get(name, name)
    if name == "round_robin":
        return RoundRobin()
    if name == "least_connections":
        return LeastConnections(rng)
    if name == "weighted":
        return Weighted()
    if name == "random":
        return Random(rng)
    if name == "consistent_hash":
        return ConsistentHash()
    if name == "p2c_peak_ewma":
        return PeakEwmaP2C(rng)
    raise ValueError(f"unknown load-balancing strategy {name!r}; one of {', '.join(STRATEGIES)} (or ip_hash)")
