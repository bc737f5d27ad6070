"""The breaker, outlier ejection, retry budget and balancers: pure logic, driven by a fake clock."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sutazai_runtime.balancing import Endpoint, make_strategy
from sutazai_runtime.resilience import BreakerPolicy, CircuitBreaker, OutlierDetector, OutlierPolicy, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **policy: float) -> CircuitBreaker:
    transitions: list[tuple[str, str]] = []
    b = CircuitBreaker("up", BreakerPolicy(**policy), clock=clock,  # type: ignore[arg-type]
                       on_transition=lambda _b, old, new: transitions.append((old, new)))
    b.transitions = transitions  # type: ignore[attr-defined]
    return b


def test_consecutive_failures_open_then_one_probe_closes() -> None:
    clock = Clock()
    b = breaker(clock, consecutive_failures=3, open_s=30)
    for _ in range(2):
        assert b.acquire()
        b.record_failure()
    assert b.state == "closed"
    assert b.acquire()
    b.record_failure()
    assert b.state == "open"
    assert not b.acquire() and b.rejected_requests == 1
    assert 29 < b.retry_after_s() <= 30
    clock.now += 30
    assert b.state == "half_open"
    assert b.acquire()  # the one probe
    assert not b.acquire()  # a second one waits
    b.record_success()
    assert b.state == "closed"
    assert b.transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_probe_opens_again_and_a_cancelled_one_frees_its_slot() -> None:
    clock = Clock()
    b = breaker(clock, consecutive_failures=1, open_s=10, half_open_probes=1)
    b.acquire()
    b.record_failure()
    clock.now += 10
    assert b.acquire()
    b.release()  # the caller went away: no verdict
    assert b.state == "half_open" and b.acquire()
    b.record_failure()
    assert b.state == "open" and b.retry_after_s() == pytest.approx(10)


def test_failure_rate_trips_only_above_the_minimum_volume() -> None:
    clock = Clock()
    b = breaker(clock, consecutive_failures=100, failure_rate=0.5, minimum_requests=10, window_s=10)
    for i in range(8):  # 4 of 8 fail, alternating: never 100 in a row, below the volume
        b.acquire()
        b.record_failure() if i % 2 else b.record_success()
    assert b.state == "closed" and b.failure_rate() == 0.5
    b.acquire()
    b.record_success()
    b.acquire()
    b.record_failure()  # 10 calls, 5 failures: 50%
    assert b.state == "open"


def test_the_window_forgets_old_calls() -> None:
    clock = Clock()
    b = breaker(clock, consecutive_failures=100, failure_rate=0.5, minimum_requests=7, window_s=5)
    for _ in range(3):
        b.record_failure()
        b.record_success()
    assert b.state == "closed" and b.window_counts() == (3, 3)
    clock.now += 6
    assert b.window_counts() == (0, 0)
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state == "closed"  # 2 of 3 failed, but only 3 calls in the window: below the volume


def test_snapshot_has_the_original_fields_and_more() -> None:
    b = breaker(Clock())
    snap = b.snapshot()
    for key in ("name", "state", "failure_threshold", "recovery_timeout", "total_requests", "successful_requests",
                "failed_requests", "consecutive_failures", "success_rate", "last_failure_time", "last_success_time",
                "window_failure_rate", "next_probe_time"):
        assert key in snap


def test_outlier_ejection_grows_and_never_takes_all() -> None:
    detector = OutlierDetector("up", OutlierPolicy(consecutive_failures=5, base_ejection_s=30, max_ejection_s=75))
    a, b = Endpoint("a", "h:1"), Endpoint("b", "h:2")
    eps = [a, b]
    now = 0.0
    for _ in range(4):
        assert not detector.failure(a, now, eps)
    assert detector.failure(a, now, eps)
    assert a.ejected(now) and a.ejected_until == 30
    for _ in range(5):  # b fails too, but it is the last one in rotation
        assert not detector.failure(b, now, eps)
    assert not b.ejected(now)
    now = 31.0
    for _ in range(5):
        detector.failure(a, now, eps)
    assert a.ejected_until == 31 + 60  # second ejection: 2 x 30
    now = 100.0
    for _ in range(5):
        detector.failure(a, now, eps)
    assert a.ejected_until == 100 + 75  # capped


def test_success_resets_the_run() -> None:
    detector = OutlierDetector("up")
    a, b = Endpoint("a", "h:1"), Endpoint("b", "h:2")
    for _ in range(4):
        detector.failure(a, 0, [a, b])
    detector.success(a, 0)
    assert not detector.failure(a, 0, [a, b])


def test_retry_budget() -> None:
    budget = RetryBudget(ratio=0.2, min_concurrent=3)
    budget.active_requests = 100
    budget.active_retries = 19
    assert budget.can_retry()
    budget.active_retries = 20
    assert not budget.can_retry()
    budget.active_requests, budget.active_retries = 1, 2
    assert budget.can_retry()  # the minimum of 3
    budget.active_retries = 3
    assert not budget.can_retry() and budget.exhausted == 2


def eps(n: int) -> list[Endpoint]:
    return [Endpoint(f"e{i}", f"h:{i}") for i in range(n)]


def test_round_robin_and_random_spread() -> None:
    endpoints = eps(3)
    rr = make_strategy("round_robin")
    assert Counter(rr.pick(endpoints).id for _ in range(300)) == {"e0": 100, "e1": 100, "e2": 100}
    rnd = make_strategy("random", random.Random(1))
    counts = Counter(rnd.pick(endpoints).id for _ in range(3000))
    assert all(800 < c < 1200 for c in counts.values())


def test_least_connections() -> None:
    endpoints = eps(3)
    endpoints[0].in_flight, endpoints[1].in_flight, endpoints[2].in_flight = 3, 1, 2
    assert make_strategy("least_connections").pick(endpoints).id == "e1"


def test_weighted_is_smooth() -> None:
    endpoints = eps(3)
    endpoints[0].weight = 5
    w = make_strategy("weighted")
    order = [w.pick(endpoints).id for _ in range(7)]
    assert Counter(order) == {"e0": 5, "e1": 1, "e2": 1}
    assert "e0e0e0" not in "".join(order)


def test_consistent_hash_keeps_keys_on_their_instance() -> None:
    endpoints = eps(4)
    ch = make_strategy("ip_hash")
    before = {k: ch.pick(endpoints, k).id for k in (f"client-{i}" for i in range(400))}
    assert all(ch.pick(endpoints, k).id == v for k, v in before.items())
    survivors = [e for e in endpoints if e.id != "e3"]
    after = {k: ch.pick(survivors, k).id for k in before}
    moved = sum(1 for k in before if before[k] != after[k])
    assert moved == sum(1 for v in before.values() if v == "e3")  # only the removed one's keys move


def test_p2c_peak_ewma_avoids_the_slow_instance() -> None:
    endpoints = eps(2)
    fast, slow = endpoints
    fast.observe(0.002, 1.0)
    slow.observe(0.5, 1.0)  # peak: one slow answer counts at once
    p2c = make_strategy("p2c_peak_ewma", random.Random(3))
    assert Counter(p2c.pick(endpoints).id for _ in range(100)) == {"e0": 100}
    slow.observe(0.002, 200.0)  # it decays back after a long healthy period
    assert slow.ewma_s < 0.01


def test_p2c_counts_load() -> None:
    endpoints = eps(2)
    for e in endpoints:
        e.observe(0.01, 1.0)
    endpoints[0].in_flight = 10
    assert make_strategy("p2c").pick(endpoints).id == "e1"


def test_p2c_leaves_an_instance_that_went_silent_with_calls_outstanding() -> None:
    """A stalled process (SIGSTOP) completes nothing: once it has been silent longer than the other's estimate
    with a call outstanding, new calls go elsewhere, before the stuck call ever completes."""
    endpoints = eps(2)
    for e in endpoints:
        e.observe(0.003, 10.0)
    frozen, other = endpoints
    frozen.start(10.0)  # sent at 10.000, never answered
    other.start(10.0)
    p2c = make_strategy("p2c", random.Random(1))
    assert p2c.pick(endpoints, now=10.001).id in {"e0", "e1"}  # 1 ms of silence: nothing known yet
    other.observe(0.003, 10.003)  # the other keeps answering
    other.in_flight -= 1
    assert {p2c.pick(endpoints, now=10.050).id for _ in range(20)} == {"e1"}  # 50 ms silent: left alone


def test_a_slow_estimate_decays_while_unused_so_the_instance_is_tried_again() -> None:
    endpoints = eps(2)
    once_slow, other = endpoints
    once_slow.observe(0.150, 10.0)  # one stall, answered late
    other.observe(0.003, 10.0)
    p2c = make_strategy("p2c", random.Random(2))
    assert p2c.pick(endpoints, now=10.1).id == "e1"
    assert once_slow.cost(70.0) < other.cost(10.0)  # a minute later it is worth trying again


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown load-balancing strategy"):
        make_strategy("fastest")
