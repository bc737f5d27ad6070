"""An OTLP/gRPC trace receiver that only counts what it is sent: the collector a benchmark's stack exports to.

    python bench/_otlp_sink.py PORT_FILE

Listens on a free port of 127.0.0.1, writes the port to PORT_FILE, then serves ``TraceService.Export`` until
SIGTERM or SIGINT, when it prints ``{"exports": N, "spans": M}`` on stdout. A real collector would also decode,
batch and forward; this one decodes (gRPC does) and drops, so what it costs the machine is a lower bound.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class _Counter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.exports = 0
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self._lock:
            self.exports += 1
            self.spans += spans
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> int:
    port_file = Path(sys.argv[1])
    counter = _Counter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(counter, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_file.write_text(str(port))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    print(json.dumps({"exports": counter.exports, "spans": counter.spans}), flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
