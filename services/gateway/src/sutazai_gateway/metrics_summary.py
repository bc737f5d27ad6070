"""Numbers for ``GET /api/v1/performance/metrics`` from Prometheus samples (no I/O here).

Quantiles come from histogram buckets the way PromQL's ``histogram_quantile`` computes them (linear
interpolation inside the bucket that holds the rank), so they are estimates bounded by the bucket edges.
Rates and window quantiles are differences between two snapshots of the same counters."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

LabelKey = tuple[tuple[str, str], ...]


@dataclass
class Hist:
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (upper bound, cumulative count)
    count: float = 0.0
    sum: float = 0.0

    def minus(self, older: Hist | None) -> Hist:
        if older is None:
            return self
        before = dict(older.buckets)
        return Hist([(le, c - before.get(le, 0.0)) for le, c in self.buckets],
                    self.count - older.count, self.sum - older.sum)

    def quantile(self, q: float) -> float | None:
        """Seconds, or None without observations."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le, cumulative in sorted(self.buckets):
            if cumulative >= rank:
                if math.isinf(le):  # beyond the last finite bucket: its lower edge is what is known
                    return lower
                inside = cumulative - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, cumulative
        return lower


@dataclass
class Snapshot:
    """Histograms and plain values (counters, gauges) by family name and labels."""

    hists: dict[str, dict[LabelKey, Hist]] = field(default_factory=dict)
    values: dict[str, dict[LabelKey, float]] = field(default_factory=dict)


def snapshot(families: Iterable[Metric], *, merge: Snapshot | None = None) -> Snapshot:
    """Index ``families`` (from a registry's ``collect()`` or the text parser); with ``merge``, added to it
    (several instances of one service: their counters sum)."""
    out = merge or Snapshot()
    for family in families:
        if family.type in ("histogram", "gaugehistogram"):
            hists = out.hists.setdefault(family.name, {})
            fresh: dict[LabelKey, Hist] = {}
            for s in family.samples:
                labels = {k: v for k, v in s.labels.items() if k != "le"}
                key = tuple(sorted(labels.items()))
                hist = fresh.setdefault(key, Hist())
                if s.name.endswith("_bucket"):
                    hist.buckets.append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    hist.count = s.value
                elif s.name.endswith("_sum"):
                    hist.sum = s.value
            for key, hist in fresh.items():
                known = hists.get(key)
                if known is None:
                    hists[key] = hist
                else:  # another instance's: add bucket by bucket
                    mine = dict(known.buckets)
                    known.buckets = [(le, c + mine.get(le, 0.0)) for le, c in hist.buckets]
                    known.count += hist.count
                    known.sum += hist.sum
        else:
            values = out.values.setdefault(family.name, {})
            for s in family.samples:
                if s.name.endswith("_created"):
                    continue
                key = tuple(sorted(s.labels.items()))
                values[key] = values.get(key, 0.0) + s.value
    return out


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def latency(hist: Hist) -> dict[str, Any]:
    return {"count": int(hist.count), "p50_ms": ms(hist.quantile(0.5)), "p95_ms": ms(hist.quantile(0.95)),
            "p99_ms": ms(hist.quantile(0.99)),
            "mean_ms": ms(hist.sum / hist.count) if hist.count > 0 else None}


def group(hists: dict[LabelKey, Hist], by: tuple[str, ...]) -> dict[tuple[str, ...], Hist]:
    """Histograms summed over every label but ``by``."""
    out: dict[tuple[str, ...], Hist] = {}
    for key, hist in hists.items():
        labels = dict(key)
        target = tuple(labels.get(name, "") for name in by)
        known = out.get(target)
        if known is None:
            out[target] = Hist(list(hist.buckets), hist.count, hist.sum)
        else:
            mine = dict(known.buckets)
            known.buckets = [(le, c + mine.get(le, 0.0)) for le, c in hist.buckets]
            known.count += hist.count
            known.sum += hist.sum
    return out


def http_routes(now: Snapshot, then: Snapshot | None, window_s: float | None) -> dict[str, Any]:
    """Per ``METHOD /route``: requests since start, the rate and latency quantiles over the window (since start
    without one), and the 5xx count."""
    current = now.hists.get("sutazai_http_request_seconds", {})
    before = then.hists.get("sutazai_http_request_seconds", {}) if then else {}
    by_route = group(current, ("method", "route"))
    before_by_route = group(before, ("method", "route"))
    errors: dict[tuple[str, str], float] = {}
    for key, hist in current.items():
        labels = dict(key)
        if labels.get("status", "").startswith("5"):
            route = (labels.get("method", ""), labels.get("route", ""))
            errors[route] = errors.get(route, 0.0) + hist.count
    routes = {}
    for (method, route), hist in sorted(by_route.items(), key=lambda item: -item[1].count):
        windowed = hist.minus(before_by_route.get((method, route))) if then else hist
        routes[f"{method} {route}"] = {
            "requests_total": int(hist.count),
            "rate_per_s": round(windowed.count / window_s, 3) if window_s else None,
            **{k: v for k, v in latency(windowed).items() if k != "count"},
            "window_requests": int(windowed.count),
            "server_errors_total": int(errors.get((method, route), 0)),
        }
    return routes


def total_rate(now: Snapshot, then: Snapshot | None, window_s: float | None) -> tuple[int, float | None]:
    current = group(now.hists.get("sutazai_http_request_seconds", {}), ())
    total = current.get((), Hist()).count
    if then is None or not window_s:
        return int(total), None
    before = group(then.hists.get("sutazai_http_request_seconds", {}), ()).get((), Hist()).count
    return int(total), round((total - before) / window_s, 3)


def upstream_calls(now: Snapshot) -> dict[str, Any]:
    """The gateway's calls to each upstream (since start): latency per upstream and per method."""
    hists = now.hists.get("sutazai_upstream_call_seconds", {})
    out: dict[str, Any] = {}
    for (upstream,), hist in sorted(group(hists, ("upstream",)).items()):
        out[upstream] = {**latency(hist), "methods": {}}
    for (upstream, method), hist in sorted(group(hists, ("upstream", "method")).items()):
        out[upstream]["methods"][method] = latency(hist)
    return out


def service_methods(snap: Snapshot) -> dict[str, Any]:
    """A service's RPCs as it served them (since its start): latency per method and calls by status code."""
    hists = snap.hists.get("sutazai_grpc_server_handling_seconds", {})
    codes = snap.values.get("sutazai_grpc_server_handled", {})
    methods: dict[str, Any] = {}
    for (service, method), hist in sorted(group(hists, ("grpc_service", "grpc_method")).items()):
        methods[f"{service}/{method}"] = {**latency(hist), "codes": {}}
    for key, value in codes.items():
        labels = dict(key)
        entry = methods.get(f"{labels.get('grpc_service')}/{labels.get('grpc_method')}")
        if entry is not None:
            entry["codes"][labels.get("grpc_code", "")] = int(value)
    in_flight = snap.values.get("sutazai_grpc_server_in_flight", {})
    return {"in_flight": int(sum(in_flight.values())), "methods": methods}


def chat_cache(snap: Snapshot) -> dict[str, Any]:
    hits = misses = 0.0
    for key, value in snap.values.get("sutazai_chat_cache", {}).items():
        outcome = dict(key).get("outcome")
        hits += value if outcome == "hit" else 0.0
        misses += value if outcome == "miss" else 0.0
    lookups = hits + misses
    return {"hits": int(hits), "misses": int(misses),
            "hit_ratio": round(hits / lookups, 4) if lookups else None}


def task_queue(snap: Snapshot) -> dict[str, Any]:
    """The tasks service's sampled gauges (every instance samples the same stream and table: the largest
    value is the one to show, not the sum)."""

    def by(name: str, label: str) -> dict[str, int]:
        return {dict(k).get(label, ""): int(v) for k, v in snap.values.get(name, {}).items()}

    def one(name: str) -> int | None:
        values = list(snap.values.get(name, {}).values())
        return int(max(values)) if values else None

    sampled = one("sutazai_tasks_queue_sampled_timestamp_seconds")
    return {
        "stream_messages": one("sutazai_tasks_stream_messages"),
        "pending_by_priority": by("sutazai_tasks_consumer_pending", "priority"),
        "unacknowledged_by_priority": by("sutazai_tasks_consumer_ack_pending", "priority"),
        "tasks_by_status": by("sutazai_tasks_by_status", "status"),
        "sampled_at_unix": sampled,
    }
