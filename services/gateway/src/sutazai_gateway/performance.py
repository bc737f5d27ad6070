"""What ``GET /api/v1/performance/metrics`` reads: this gateway's Prometheus metrics (every process's, in
multi-process mode), a ring of snapshots for rates over the last minute, and each service instance's own
metrics through ``Diagnostics.GetMetrics`` (its gRPC port: no other port to open between pods)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import grpc
import psutil
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sutazai.common.v1 import common_pb2, common_pb2_grpc

from sutazai_gateway import metrics_summary as summary
from sutazai_gateway.upstreams import Upstreams

log = logging.getLogger(__name__)

HTTP_FAMILIES = ("sutazai_http_request_seconds",)
GATEWAY_FAMILIES = (*HTTP_FAMILIES, "sutazai_http_in_flight", "sutazai_upstream_call_seconds")
SERVICE_FAMILIES = (
    "sutazai_grpc_server_handling_seconds", "sutazai_grpc_server_handled", "sutazai_grpc_server_in_flight",
    "sutazai_chat_cache", "sutazai_tasks_stream_messages", "sutazai_tasks_consumer_pending",
    "sutazai_tasks_consumer_ack_pending", "sutazai_tasks_by_status", "sutazai_tasks_queue_sampled_timestamp_seconds",
)


class GatewayMetrics:
    """This gateway's metrics: the process's own registry, or with several worker processes the multi-process
    files of all of them (so every process answers with the same, whole-gateway numbers)."""

    def __init__(self, multiprocess_dir: str | None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.processes = 1

    def collect(self, names: Iterable[str]) -> list[Metric]:
        wanted = set(names)
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            families = list(registry.collect())
            self.processes = max(1, len({f for f in os.listdir(self.multiprocess_dir) if f.startswith("histogram_")}))
            return [f for f in families if f.name in wanted]
        return [f for f in REGISTRY.collect() if f.name in wanted]


class Window:
    """Snapshots of the request histograms every ``every_s`` seconds, kept for ``span_s``: the rate and the
    quantiles of the last minute are the difference between now and the oldest one kept."""

    def __init__(self, source: GatewayMetrics, *, every_s: float = 10.0, span_s: float = 60.0) -> None:
        self._source = source
        self._every_s = every_s
        self._span_s = span_s
        self._ring: deque[tuple[float, summary.Snapshot]] = deque()

    def record(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._ring.append((now, summary.snapshot(self._source.collect(HTTP_FAMILIES))))
        while self._ring and now - self._ring[0][0] > self._span_s:
            self._ring.popleft()

    def baseline(self, now: float | None = None) -> tuple[summary.Snapshot | None, float | None]:
        now = time.monotonic() if now is None else now
        if not self._ring or now - self._ring[0][0] < 1.0:
            return None, None
        at, snap = self._ring[0]
        return snap, now - at

    async def run(self) -> None:
        while True:
            try:
                self.record()
            except Exception:
                log.warning("metrics snapshot failed", exc_info=True)
            await asyncio.sleep(self._every_s)


async def service_snapshots(upstreams: Upstreams, timeout_s: float) -> dict[str, Any]:
    """Per service and instance: its metric families (an error string for an instance that did not answer)."""

    async def one(stub: Any) -> list[Metric] | str:
        try:
            reply = await stub.GetMetrics(common_pb2.GetMetricsRequest(names=SERVICE_FAMILIES), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return list(text_string_to_metric_families(reply.exposition.decode()))

    calls = {(u.name, instance): one(stub) for u in upstreams
             for instance, stub in u.plain_stubs(common_pb2_grpc.DiagnosticsStub)}
    results = await asyncio.gather(*calls.values())
    out: dict[str, dict[str, list[Metric] | str]] = {u.name: {} for u in upstreams}
    for (name, instance), result in zip(calls, results, strict=True):
        out[name][instance] = result
    return out


def _process_resources() -> dict[str, Any]:
    process = psutil.Process()
    with contextlib.suppress(psutil.Error):
        rss = process.memory_info().rss
        cpu = process.cpu_times()
        return {"pid": process.pid, "rss_bytes": rss, "cpu_seconds": round(cpu.user + cpu.system, 3)}
    return {"pid": process.pid}


async def build_report(
    source: GatewayMetrics, window: Window, upstreams: Upstreams, *, timeout_s: float, system: dict[str, float],
) -> dict[str, Any]:
    now = summary.snapshot(source.collect(GATEWAY_FAMILIES))
    then, window_s = window.baseline()
    total, rate = summary.total_rate(now, then, window_s)
    in_flight = int(sum(now.values.get("sutazai_http_in_flight", {}).values()))
    services = await service_snapshots(upstreams, timeout_s)

    per_service: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    queue: dict[str, Any] = {}
    for name, instances in services.items():
        answered = [families for families in instances.values() if not isinstance(families, str)]
        merged = summary.Snapshot()
        for families in answered:  # counters and histograms of the instances add up
            summary.snapshot(families, merge=merged)
        per_service[name] = {
            "instances": len(instances),
            "errors": {i: r for i, r in instances.items() if isinstance(r, str)},
            **summary.service_methods(merged),
        }
        if name == "chat" and answered:
            cache["chat_responses"] = summary.chat_cache(merged)
        if name == "tasks" and answered:  # every instance samples the same stream and table: one is the answer
            queue = summary.task_queue(summary.snapshot(answered[0]))

    breakers = {u.name: u.breaker.state for u in upstreams}
    return {
        "timestamp": time.time(),
        "gateway": {
            "processes_reporting": source.processes,  # gateway processes whose request metrics are summed
            "requests_total": total,
            "request_rate_per_s": rate,
            "window_s": round(window_s, 1) if window_s else None,
            "in_flight": in_flight,
            "routes": summary.http_routes(now, then, window_s),
        },
        "upstreams": summary.upstream_calls(now),
        "circuit_breakers": {"scope": "the gateway process that answered", "process": os.getpid(),
                             "states": breakers},
        "cache": cache,
        "task_queue": queue,
        "services": per_service,
        "system": {**system, "process": _process_resources()},
    }
