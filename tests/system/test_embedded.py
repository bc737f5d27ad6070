"""The fresh-machine path: with SUTAZAI_EMBEDDED=1 the stack ignores the servers on the standard
ports and starts PostgreSQL, Redis (Valkey) and NATS from their wheels, on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.stack_runner import alive, run_stack, wait_until

pytestmark = pytest.mark.system


def test_the_stack_comes_up_healthy_on_embedded_infrastructure_alone(own_tmp: Path) -> None:
    with run_stack(own_tmp / "home", None, SUTAZAI_EMBEDDED="1") as stack:
        infra = stack.state["infra"]
        assert {name: i["origin"] for name, i in infra.items()} == {
            "postgres": "embedded", "redis": "embedded", "nats": "embedded", "model_server": "embedded",
            "embeddings": "embedded",
        }
        assert ":5432/" not in infra["postgres"]["url"] and ":6379/" not in infra["redis"]["url"]
        assert not infra["nats"]["url"].endswith(":4222")
        health = wait_until(lambda: (h := stack.detailed_health())["overall_status"] == "healthy" and h, 20)
        assert health, stack.detailed_health()
        assert all(c["status"] == "healthy" for c in health["services"].values())
        assert (own_tmp / "home" / "postgres" / "PG_VERSION").exists()
        pids = stack.child_pids()
    assert stack.process.returncode == 0, stack.log()
    assert not [pid for pid in pids if alive(pid)]
