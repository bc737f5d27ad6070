"""``X-Request-ID`` is taken or made, echoed, and on every log line of the request; credentials never reach
a log line; ``/api/v1/health/detailed`` runs one round at a time, at most every ``min_interval_s``."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sutazai_gateway.health_monitor import HealthMonitor
from sutazai_gateway.health_tracker import CheckResult
from sutazai_runtime.logging import configure_logging

KEY = "sk-sutazai-abcd1234-" + "A" * 43


def _app() -> FastAPI:
    from sutazai_gateway.problems import install_problem_handlers
    from sutazai_gateway.request_id import RequestId

    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestId)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken")

    @app.get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("test.work").warning("working with %s", KEY)
        return {"ok": "yes"}

    return app


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_request_id_is_taken_or_made_echoed_and_logged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "gateway")
    try:
        client = TestClient(_app())
        given = client.get("/work", headers={"X-Request-ID": "client-chosen.42"})
        assert given.headers["x-request-id"] == "client-chosen.42"
        made = client.get("/work")
        assert len(made.headers["x-request-id"]) == 32
        # Not a sane token (a line break, too long): replaced, never echoed or logged.
        forged = client.get("/work", headers={"X-Request-ID": "x" * 200})
        assert forged.headers["x-request-id"] != "x" * 200
        # An unhandled error is answered and logged outside the middleware: still with the request's id.
        broken = TestClient(_app(), raise_server_exceptions=False).get("/boom", headers={"X-Request-ID": "boom-1"})
        assert (broken.status_code, broken.headers["x-request-id"]) == (500, "boom-1")
        out = _lines(capsys.readouterr().out)
        assert any(line["level"] == "ERROR" and line.get("request_id") == "boom-1" for line in out)
        lines = [line for line in out if line["logger"] == "test.work"]
        assert [line["request_id"] for line in lines] == [
            "client-chosen.42", made.headers["x-request-id"], forged.headers["x-request-id"]]
        assert all(KEY not in json.dumps(line) and "[redacted]" in str(line["message"]) for line in lines)
    finally:
        logging.getLogger().handlers.clear()


class _CountingMonitor(HealthMonitor):
    """The real bookkeeping, with a round that only counts and takes a while (no services to ask here)."""

    async def _check(self) -> list[CheckResult]:
        self.rounds += 1
        await asyncio.sleep(0.2)
        return []


async def test_detailed_health_shares_one_round_and_keeps_its_picture_briefly() -> None:
    monitor = _CountingMonitor(None, [], timeout_s=1, interval_s=60, min_interval_s=30)  # type: ignore[arg-type]
    await asyncio.gather(*(monitor.fresh() for _ in range(20)))
    assert monitor.rounds == 1  # twenty callers at once: one round
    await asyncio.gather(*(monitor.fresh() for _ in range(20)))
    assert monitor.rounds == 1  # within the minimum interval: the last picture
    # A caller that gives up does not cancel the round the others wait for.
    waiter = asyncio.create_task(monitor.check_now())
    await asyncio.sleep(0.05)
    waiter.cancel()
    assert (await monitor.check_now()) == []
    assert monitor.rounds == 2
