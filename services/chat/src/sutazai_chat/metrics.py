"""Prometheus metrics of model calls, per model and backend (served by the runtime's metrics endpoint)."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "sutazai_chat_requests_total", "model calls by outcome", ["operation", "model", "backend", "outcome"]
)
ERRORS = Counter("sutazai_chat_backend_errors_total", "failed calls to a backend", ["model", "backend"])
TTFT = Histogram(
    "sutazai_chat_time_to_first_token_seconds", "time from request to the first token", ["model", "backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKENS_PER_SECOND = Histogram(
    "sutazai_chat_tokens_per_second", "generated tokens per second of one reply", ["model", "backend"],
    buckets=(1, 5, 10, 25, 50, 100, 200, 400, 800, 1600),
)
DURATION = Histogram("sutazai_chat_duration_seconds", "duration of one model call", ["operation", "model", "backend"])
TOKENS = Counter("sutazai_chat_tokens_total", "tokens processed", ["model", "backend", "kind"])
IN_FLIGHT = Gauge("sutazai_chat_in_flight", "calls in progress per backend", ["backend"])
QUEUE_DEPTH = Gauge("sutazai_chat_queue_depth", "calls waiting for a slot per backend", ["backend"])
BREAKER_OPEN = Gauge("sutazai_chat_breaker_open", "1 when the backend's circuit breaker is not closed", ["backend"])
CACHE = Counter("sutazai_chat_cache_total", "response cache look-ups", ["model", "outcome"])
