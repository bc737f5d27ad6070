"""2,000 echo tasks through the whole stack while a worker is SIGKILLed, NATS restarts and PostgreSQL
restarts. Every task must end ``completed`` with exactly one recorded result.

The PostgreSQL and NATS servers here are the test's own, on free ports (never the shared ones),
started from the same wheels as ``make run``'s embedded defaults, and always stopped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sutazai_stack import embedded
from sutazai_stack.ports import answers, free_port
from sutazai_stack.processes import ManagedProcess

from tests.system.stack_runner import RunningStack, Servers, run_stack, wait_until

pytestmark = pytest.mark.system

TASKS = 2000
DEADLINE_S = 240


class OwnServers:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pg_port, self.nats_port = free_port(), free_port()
        self.pg: ManagedProcess | None = None
        self.nats: ManagedProcess | None = None

    def start_postgres(self) -> None:
        self.pg = embedded.postgres(self.root, self.pg_port)
        self.pg.start()
        assert wait_until(lambda: answers("127.0.0.1", self.pg_port), 30)

    def start_nats(self) -> None:
        self.nats = embedded.nats(self.root, self.nats_port)
        self.nats.start()
        assert wait_until(lambda: answers("127.0.0.1", self.nats_port), 15)

    def restart_nats(self) -> None:
        assert self.nats is not None
        self.nats.stop()
        self.start_nats()

    def restart_postgres(self) -> None:
        assert self.pg is not None
        self.pg.stop()
        self.start_postgres()

    def stop(self) -> None:
        for process in (self.nats, self.pg):
            if process is not None:
                process.stop()


@pytest.fixture
def servers(own_tmp: Path) -> Iterator[OwnServers]:
    own = OwnServers(own_tmp / "infra")
    try:
        own.start_postgres()
        own.start_nats()
        yield own
    finally:
        own.stop()


async def _post_all(stack: RunningStack, servers: OwnServers, faults: list[str]) -> None:
    """Post every task, retrying (same idempotency key) through the faults, which fire as we go."""
    posted = 0
    schedule = {300: "kill worker", 800: "restart nats", 1400: "restart postgres"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(TASKS):
        queue.put_nowait(i)
    deadline = time.monotonic() + DEADLINE_S / 2

    async def fault(name: str) -> None:
        faults.append(name)
        if name == "kill worker":
            os.kill(stack.pid("tasks-worker-1"), signal.SIGKILL)
        # On this (the main) thread: the servers die with the thread that started them (PR_SET_PDEATHSIG),
        # so a pool thread would take them down when it retires. Blocking the loop a second is fine here.
        elif name == "restart nats":
            servers.restart_nats()
        else:
            servers.restart_postgres()

    async with httpx.AsyncClient(base_url=stack.url, headers=stack.admin_headers, timeout=10) as client:

        async def poster() -> None:
            nonlocal posted
            while not queue.empty():
                i = queue.get_nowait()
                body = {"task_type": "echo", "payload": {"i": i}, "idempotency_key": f"fault-{i}"}
                while True:
                    assert time.monotonic() < deadline, f"could not post task {i} in time"
                    try:
                        response = await client.post("/api/v1/tasks", json=body)
                        if response.status_code == 202:
                            break
                        assert response.status_code >= 500 or response.status_code == 429, response.text
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
                posted += 1
                if posted in schedule:
                    asyncio.get_running_loop().create_task(fault(schedule[posted]))
                await asyncio.sleep(0.01)  # paced, so the faults land mid-run

        await asyncio.gather(*(poster() for _ in range(8)))
    assert posted == TASKS


async def _outcome(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n, sum(completions) AS results,"
            " sum(CASE WHEN result = payload THEN 1 ELSE 0 END) AS echoed"
            " FROM tasks.tasks WHERE idempotency_key LIKE 'fault-%' GROUP BY status"
        )
    finally:
        await conn.close()
    summary = {r["status"]: r["n"] for r in rows}
    summary["results"] = sum(r["results"] or 0 for r in rows)
    summary["echoed"] = sum(r["echoed"] or 0 for r in rows)
    return summary


def test_no_task_is_lost_or_duplicated_through_worker_nats_and_postgres_failures(
    tmp_path: Path, servers: OwnServers, stack_servers: Servers
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{servers.pg_port}/sutazai"
    with run_stack(
        tmp_path / "home", stack_servers, DATABASE_URL=dsn, NATS_URL=f"nats://127.0.0.1:{servers.nats_port}",
        SUTAZAI_TASKS_SWEEP_INTERVAL_S="2", SUTAZAI_TASKS_SWEEP_AFTER_S="5",
    ) as stack:
        faults: list[str] = []
        asyncio.run(_post_all(stack, servers, faults))
        assert wait_until(lambda: len(faults) == 3, 30), faults

        def all_completed() -> dict[str, int] | None:
            try:
                summary = asyncio.run(_outcome(dsn))
            except (OSError, asyncpg.PostgresError):
                return None
            return summary if summary.get("completed") == TASKS else None

        summary = wait_until(all_completed, DEADLINE_S / 2, interval_s=1.0)
        assert summary, asyncio.run(_outcome(dsn))
        assert summary == {"completed": TASKS, "results": TASKS, "echoed": TASKS}
        assert faults == ["kill worker", "restart nats", "restart postgres"]
