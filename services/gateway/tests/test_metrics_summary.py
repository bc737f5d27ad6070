"""The numbers of /api/v1/performance/metrics from Prometheus samples, and the per-route middleware: quantiles
as PromQL's histogram_quantile computes them, window rates as snapshot differences, instances summed, the
route template (never the raw path) as the label."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sutazai_gateway import metrics_summary as summary
from sutazai_gateway.http_metrics import HttpMetrics

# 100 observations: 50 at <= 10 ms, 40 more at <= 100 ms, 10 more at <= 1 s
EXPOSITION = """# TYPE sutazai_http_request_seconds histogram
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="200",le="0.01"} 50
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="200",le="0.1"} 90
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="200",le="1.0"} 100
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="200",le="+Inf"} 100
sutazai_http_request_seconds_count{method="GET",route="/a/{id}",status="200"} 100
sutazai_http_request_seconds_sum{method="GET",route="/a/{id}",status="200"} 5.0
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="503",le="0.01"} 0
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="503",le="0.1"} 0
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="503",le="1.0"} 0
sutazai_http_request_seconds_bucket{method="GET",route="/a/{id}",status="503",le="+Inf"} 2
sutazai_http_request_seconds_count{method="GET",route="/a/{id}",status="503"} 2
sutazai_http_request_seconds_sum{method="GET",route="/a/{id}",status="503"} 20.0
# TYPE sutazai_chat_cache_total counter
sutazai_chat_cache_total{model="m",outcome="hit"} 3
sutazai_chat_cache_total{model="m",outcome="miss"} 1
"""


def _snap(text: str, merge: summary.Snapshot | None = None) -> summary.Snapshot:
    return summary.snapshot(text_string_to_metric_families(text), merge=merge)


def test_quantiles_interpolate_inside_the_bucket_that_holds_the_rank() -> None:
    hist = summary.Hist([(0.01, 50), (0.1, 90), (1.0, 100), (float("inf"), 100)], 100, 5.0)
    assert hist.quantile(0.5) == pytest.approx(0.01)
    assert hist.quantile(0.95) == pytest.approx(0.1 + 0.9 * 0.5)
    assert hist.quantile(0.25) == pytest.approx(0.005)
    assert summary.Hist().quantile(0.5) is None
    # past the last finite bucket only its edge is known
    assert summary.Hist([(0.1, 0), (float("inf"), 4)], 4, 1.0).quantile(0.99) == pytest.approx(0.1)


def test_routes_sum_over_status_and_count_server_errors_and_a_window_is_a_difference() -> None:
    now = _snap(EXPOSITION)
    routes = summary.http_routes(now, None, None)
    entry = routes["GET /a/{id}"]
    assert entry["requests_total"] == 102 and entry["server_errors_total"] == 2 and entry["rate_per_s"] is None
    then = _snap(EXPOSITION.replace("} 100\n", "} 60\n").replace("} 90\n", "} 60\n").replace("} 50\n", "} 40\n"))
    windowed = summary.http_routes(now, then, 10.0)["GET /a/{id}"]
    assert windowed["window_requests"] == 40 + 2 - 2 and windowed["rate_per_s"] == pytest.approx(4.0)
    assert summary.total_rate(now, then, 10.0) == (102, pytest.approx(4.0))


def test_instances_add_up_and_the_cache_ratio_is_hits_over_lookups() -> None:
    merged = _snap(EXPOSITION, _snap(EXPOSITION))
    assert summary.http_routes(merged, None, None)["GET /a/{id}"]["requests_total"] == 204
    assert summary.chat_cache(merged) == {"hits": 6, "misses": 2, "hit_ratio": 0.75}
    assert summary.chat_cache(summary.Snapshot())["hit_ratio"] is None


async def test_the_middleware_labels_by_route_template_and_status() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "gone":
            raise HTTPException(404, "gone")
        return {"id": thing_id}

    app.add_middleware(HttpMetrics)

    def count(route: str, status: str) -> float:
        return REGISTRY.get_sample_value("sutazai_http_request_seconds_count",
                                         {"method": "GET", "route": route, "status": status}) or 0.0

    before = count("/things/{thing_id}", "200"), count("/things/{thing_id}", "404"), count("unmatched", "404")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for thing_id in ("a", "b", "c"):
            assert (await client.get(f"/things/{thing_id}")).status_code == 200
        assert (await client.get("/things/gone")).status_code == 404
        assert (await client.get("/nowhere/at/all")).status_code == 404
    assert count("/things/{thing_id}", "200") - before[0] == 3
    assert count("/things/{thing_id}", "404") - before[1] == 1
    assert count("unmatched", "404") - before[2] == 1
    assert REGISTRY.get_sample_value("sutazai_http_in_flight") == 0
