"""Shared runtime of the SutazAI services.

Importable, never run. Each module is one concern:

- ``settings``: the pydantic-settings base every service's ``Settings`` extends.
- ``logging``: JSON logs to stdout, configured once in ``main()``.
- ``identity``: the caller's identity (user id, roles) and the signed proof that carries it between services.
- ``grpc_server``: a ``grpc.aio`` server with health, reflection, diagnostics, metrics, self-registration,
  graceful stop.
- ``grpc_observe``: per-method metrics and server spans of every RPC a service serves (no interceptor).
- ``telemetry``: OpenTelemetry traces, on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; trace context in gRPC
  metadata and NATS headers; trace ids on log lines.
- ``grpc_client``: channels with default deadlines.
- ``discovery``: the service registry (NATS JetStream KV, Consul, static) behind one interface.
- ``balancing``: load-balancing strategies over endpoints (no I/O).
- ``resilience``: breaker, outlier ejection, retry budget (no I/O) and ``Upstream``, which applies them
  with a balancer to every gRPC call to one service.
- ``probes``: dependency checks (Postgres, Redis, NATS, HTTP) with latency.
- ``postgres``: an asyncpg pool and versioned SQL migrations per service schema.
- ``nats``: NATS connection and JetStream stream set-up.
- ``startup``: retrying a dependency's first connection with a deadline.
- ``unimplemented``: servicers whose RPCs answer UNIMPLEMENTED until their issue lands.
"""

__version__ = "0.1.0"
