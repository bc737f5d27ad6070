"""Prometheus metrics of the gateway: served by the process itself, or, with several worker processes,
in prometheus_client's multi-process mode, aggregated and served by the supervising process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve_metrics(port: int, host: str) -> None:
    """One process: its own default registry (process and platform collectors included)."""
    start_http_server(port, addr=host)


def serve_multiprocess_metrics(port: int, host: str, directory: str) -> None:
    """The supervisor of several workers: every worker's metrics, from the files they write to ``directory``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
