"""The Celery baseline for ``tasks_throughput.py``: one ``echo`` task on a Redis broker and result backend.

The worker is started by the benchmark as ``python -m celery -A bench._celery_app worker --concurrency 2`` with
the repository root on PYTHONPATH (``bench`` is then a namespace package). The broker and the result backend are
the machine's Redis on 127.0.0.1:6379, databases 13 and 14 unless ``BENCH_CELERY_BROKER`` and
``BENCH_CELERY_BACKEND`` say otherwise; the benchmark flushes both before and after a run.

Celery's defaults are kept (prefork pool, JSON, prefetch multiplier 4, early acknowledgement), so the baseline is
Celery as it is usually deployed, not a tuned one.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

BROKER_URL = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/13")
BACKEND_URL = os.environ.get("BENCH_CELERY_BACKEND", "redis://127.0.0.1:6379/14")

app = Celery("bench", broker=BROKER_URL, backend=BACKEND_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.echo")
def echo(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the payload and the moment (``time.time()``) the task started running."""
    started = time.time()
    return {"payload": payload, "started": started}
