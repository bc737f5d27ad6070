"""Prometheus metrics of the client side: per upstream and per instance. Children are looked up once per
endpoint and cached, never per call."""

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter("sutazai_upstream_calls_total", "calls to an upstream instance, by outcome",
                ["upstream", "instance", "outcome"])
IN_FLIGHT = Gauge("sutazai_upstream_in_flight", "calls in flight to an upstream", ["upstream"])
REJECTED = Counter("sutazai_upstream_rejected_total", "calls refused before leaving (breaker open, cap, none)",
                   ["upstream", "reason"])
RETRIES = Counter("sutazai_upstream_retries_total", "retries on another instance", ["upstream"])
BREAKER_STATE = Gauge("sutazai_breaker_state", "0 closed, 1 half-open, 2 open", ["breaker"])
BREAKER_TRANSITIONS = Counter("sutazai_breaker_transitions_total", "circuit breaker state changes",
                              ["breaker", "from_state", "to_state"])
EJECTIONS = Counter("sutazai_outlier_ejections_total", "instances ejected for consecutive failures",
                    ["upstream", "instance"])
INSTANCES = Gauge("sutazai_upstream_instances", "instances an upstream resolves to", ["upstream"])

CALL_SECONDS = Histogram(
    "sutazai_upstream_call_seconds", "a unary call to an upstream as its caller saw it (retries included)",
    ["upstream", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


def breaker_transition(breaker: object, old: str, new: str) -> None:
    """``on_transition`` for a ``CircuitBreaker``: exports the change."""
    name = getattr(breaker, "name", "?")
    BREAKER_TRANSITIONS.labels(name, old, new).inc()
    BREAKER_STATE.labels(name).set(STATE_VALUE.get(new, 0))
