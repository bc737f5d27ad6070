"""The ``mesh`` task type: deliver ``{task_id, payload, priority}`` by HTTP POST to ``/process`` of an instance
of the named service, as the original mesh did. The worker's retries (exponential back-off, dead letters)
cover connection failures and 5xx answers; any other answer is the task's result."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp
from sutazai_runtime.balancing import Endpoint, make_strategy
from sutazai_runtime.discovery import Registry

from sutazai_tasks.errors import PermanentError
from sutazai_tasks.handlers import Progress
from sutazai_tasks.model import TaskRow

MAX_BODY_BYTES = 1_048_576


class MeshDelivery:
    def __init__(self, registry: Registry, session: aiohttp.ClientSession, *, timeout_s: float = 30.0) -> None:
        self._registry = registry
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._balancer = make_strategy("round_robin")

    async def __call__(self, task: TaskRow, progress: Progress) -> Any:
        service = str(task.payload().get("service", ""))
        instances = [i for i in self._registry.instances(service, passing_only=False) if i.passing or i.external]
        if not instances:
            if not self._registry.view.instances(service):
                raise PermanentError(f"no service {service!r} is registered")
            raise ConnectionError(f"no instance of {service!r} is passing")
        # another instance on each attempt: the attempt number turns the round robin
        endpoints = [Endpoint(i.id, i.target) for i in instances]
        picked = endpoints[(task.attempts + len(endpoints) - 1) % len(endpoints)] if task.attempts else (
            self._balancer.pick(endpoints))
        instance = next(i for i in instances if i.id == picked.id)
        trace_id = uuid.uuid4().hex
        body = {"task_id": task.id, "payload": task.payload().get("payload", {}), "priority": task.priority}
        started = time.perf_counter()
        try:
            async with self._session.post(f"http://{instance.target}/process", json=body, timeout=self._timeout,
                                          headers={"X-Trace-Id": trace_id}) as response:
                raw = await response.content.read(MAX_BODY_BYTES)
                status, headers = response.status, dict(response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConnectionError(f"{instance.id} ({instance.target}): {type(exc).__name__}: {exc}") from exc
        if status >= 500:
            raise ConnectionError(f"{instance.id} answered HTTP {status}")
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return {"status_code": status, "headers": headers, "body": parsed, "instance_id": instance.id,
                "trace_id": trace_id, "duration": round(time.perf_counter() - started, 6)}
