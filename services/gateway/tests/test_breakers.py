import grpc
import pytest
from sutazai_gateway.breakers import BreakerOpenError, CircuitBreaker

FAIL = grpc.StatusCode.UNAVAILABLE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("tasks", failure_threshold=3, recovery_timeout_s=30, clock=clock)


def test_consecutive_failures_open_it_and_it_then_refuses_at_once() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record(FAIL)
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record(FAIL)
    assert breaker.state == "open"
    with pytest.raises(BreakerOpenError, match="retry in 30 s"):
        breaker.before_call()
    assert breaker.snapshot()["rejected_requests"] == 1
    assert breaker.rejects_now()


def test_business_errors_and_successes_do_not_count_as_failures() -> None:
    breaker = _breaker(Clock())
    for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OK) * 3:
        breaker.before_call()
        breaker.record(code)
    snapshot = breaker.snapshot()
    assert (snapshot["state"], snapshot["failed_requests"], snapshot["success_rate"]) == ("closed", 0, 100.0)


def test_after_the_timeout_one_probe_decides() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record(FAIL)
    clock.now += 31
    breaker.before_call()  # the probe
    assert breaker.state == "half_open"
    with pytest.raises(BreakerOpenError, match="probing"):
        breaker.before_call()  # only one probe at a time
    breaker.record(FAIL)
    assert breaker.state == "open"  # a failed probe opens it again for a full timeout
    clock.now += 31
    breaker.before_call()
    breaker.record(grpc.StatusCode.OK)
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


def test_reset_closes_it() -> None:
    breaker = _breaker(Clock())
    for _ in range(3):
        breaker.before_call()
        breaker.record(FAIL)
    breaker.reset()
    breaker.before_call()
    assert breaker.state == "closed"
