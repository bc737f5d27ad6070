"""``python -m sutazai_runtime.healthcheck``: the container health check, against a real gRPC health server
and a real HTTP server on free ports, and against a port nothing listens on."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sutazai_runtime.healthcheck import check


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(0)


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_grpc_serving_is_healthy_and_not_serving_is_not(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert check(f"grpc://127.0.0.1:{port}", 2) is None
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert check(f"grpc://127.0.0.1:{port}", 2) == "NOT_SERVING"


def test_http_2xx_is_healthy_and_errors_are_not(http_server: int) -> None:
    assert check(f"http://127.0.0.1:{http_server}/ok", 2) is None
    assert "503" in (check(f"http://127.0.0.1:{http_server}/down", 2) or "")


def test_nothing_listening_and_bad_targets_are_unhealthy() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert check(f"grpc://127.0.0.1:{port}", 1) is not None
    assert check(f"http://127.0.0.1:{port}/", 1) is not None
    assert "unknown target" in (check("tcp://127.0.0.1:1", 1) or "")


def test_the_command_exits_1_with_the_reason(http_server: int) -> None:
    ok = subprocess.run([sys.executable, "-m", "sutazai_runtime.healthcheck", f"http://127.0.0.1:{http_server}/ok"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "sutazai_runtime.healthcheck", f"http://127.0.0.1:{http_server}/x"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and bad.stderr.startswith("unhealthy: ")
