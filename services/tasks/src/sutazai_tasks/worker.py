"""The worker loop: pull work by priority, admit, claim in Postgres, run, record, then acknowledge.

At-least-once delivery with an exactly-once effect: a message is acknowledged only after its
outcome is committed, and every state change is guarded (``store``), so a redelivered message finds
the task already finished and is simply acknowledged.

Each message is handled on its own (``_handle``): admitted, claimed, run, recorded and acknowledged when
*its* task finishes, not when the slowest of its fetched batch does. Claims and completions of tasks that
happen at the same moment still share one statement (``Coalescer``).

Capacity is not failure: a task whose model is at capacity (the handler's ``Gate`` refuses it, or chat
answers RESOURCE_EXHAUSTED, ``Busy``) goes back to JetStream with a delay, its claim undone, no attempt
spent. Only real errors count against ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import FetchTimeoutError
from opentelemetry.trace import SpanKind
from sutazai_runtime import telemetry
from sutazai_runtime.coalesce import Coalescer

from sutazai_tasks import metrics
from sutazai_tasks.bus import ACK_WAIT_S, TaskBus, Work
from sutazai_tasks.errors import Busy, ParkedError, PermanentError
from sutazai_tasks.handlers import Gate, Handler
from sutazai_tasks.model import PRIORITY_CLASSES, RawJson, TaskRow, backoff_s, dump_json
from sutazai_tasks.store import TaskStore

log = logging.getLogger(__name__)

# How long each priority's fetch may wait when it is empty: the highest are only glanced at, the lowest
# waits longest, so an idle worker makes few requests and a high task never waits behind a low batch.
_FETCH_WAIT_S = {"high": 0.02, "normal": 0.02, "low": 0.25}

# ("ok", result) | ("retry", error) | ("fail", error) | ("busy", why) | ("cancelled", None) | ("parked", None)
Outcome = tuple[str, Any]


def busy_delay_s(deliveries: int, base_s: float) -> float:
    """How long a task put back for capacity waits before it is offered again: grows with its deliveries up to
    8x ``base_s``, with jitter so a backlog does not come back all at once."""
    return base_s * min(8.0, 1.0 + deliveries / 4) * random.uniform(0.75, 1.25)


class Worker:
    def __init__(
        self, store: TaskStore, bus: TaskBus, handlers: dict[str, Handler], *, batch: int = 100,
        retry_base_s: float = 1.0, max_in_flight: int = 500, stop_grace_s: float = 3.0, busy_base_s: float = 1.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._handlers = handlers
        self._gates = {kind: h for kind, h in handlers.items() if isinstance(h, Gate)}  # a Protocol check is slow
        self._batch = batch
        self._retry_base_s = retry_base_s
        self._busy_base_s = busy_base_s
        self._max_in_flight = max_in_flight
        self._stop_grace_s = stop_grace_s
        self._in_flight = 0
        self._room = asyncio.Event()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._held: dict[str, Msg] = {}  # claimed and not yet acknowledged: kept alive in JetStream
        self._claims: Coalescer[tuple[str, bool], TaskRow | None] = Coalescer(self._claim_many)
        self._completions: Coalescer[tuple[str, str], bool] = Coalescer(self._complete_many)

    async def run(self, stop: asyncio.Event) -> None:
        subs = {
            klass: await self._bus.js.pull_subscribe_bind(
                durable=self._bus.names.consumer(klass), stream=self._bus.names.tasks_stream
            )
            for klass in PRIORITY_CLASSES
        }
        cancels = await self._bus.nc.subscribe(self._bus.names.cancel_all, cb=self._on_cancel)
        keepalive = asyncio.create_task(self._keep_alive())
        log.info("worker pulling from %s", ", ".join(self._bus.names.work(k) for k in PRIORITY_CLASSES))
        handling: set[asyncio.Task[None]] = set()
        try:
            # Messages are handled concurrently, so a long task (an agent, an orchestration waiting for its
            # children) never stops this loop from pulling more work, up to max_in_flight messages.
            while not stop.is_set():
                room = self._max_in_flight - self._in_flight
                if room <= 0:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), 0.5)
                    continue
                for msg in await self._fetch(subs, min(self._batch, room)):
                    self._in_flight += 1
                    job = asyncio.create_task(self._handle_counted(msg))
                    handling.add(job)
                    job.add_done_callback(handling.discard)
        finally:
            # Finish what is in hand for a moment; anything left unacknowledged is redelivered.
            if handling:
                await asyncio.wait(handling, timeout=self._stop_grace_s)
                for job in handling:
                    job.cancel()
            keepalive.cancel()
            with contextlib.suppress(Exception):
                await cancels.unsubscribe()

    async def _fetch(self, subs: dict[str, Any], size: int) -> list[Msg]:
        for klass in PRIORITY_CLASSES:
            try:
                return list(await subs[klass].fetch(size, timeout=_FETCH_WAIT_S[klass]))
            except (FetchTimeoutError, NatsTimeoutError, TimeoutError):
                continue
            except Exception as exc:  # NATS restarting, connection lost: back off and try again
                log.warning("fetch from %s failed: %s", klass, exc)
                await asyncio.sleep(0.5)
                return []
        return []

    async def _on_cancel(self, msg: Msg) -> None:
        task_id = msg.subject.rsplit(".", 1)[-1]
        running = self._running.get(task_id)
        if running is not None:
            log.info("cancelling running task %s", task_id)
            running.cancel()

    async def _keep_alive(self) -> None:
        """Tell JetStream the claimed tasks are still being worked on, so long tasks are not redelivered."""
        while True:
            await asyncio.sleep(ACK_WAIT_S / 3)
            for msg in list(self._held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    # --- one message -------------------------------------------------------------------------------------

    async def _handle_counted(self, msg: Msg) -> None:
        try:
            await self._handle(msg)
        except Exception:
            log.exception("handling a message failed; it will be redelivered")
        finally:
            self._in_flight -= 1
            self._room.set()

    async def _handle(self, msg: Msg) -> None:
        work = Work.decode(msg.data)
        if work is None:
            log.error("dropping a malformed work message: %r", msg.data[:200])
            await msg.term()
            return
        gate = self._gates.get(work.task_type)
        if gate is not None and not await gate.admit(work):
            metrics.TASKS_DEFERRED.labels(work.task_type, "admission").inc()
            await msg.nak(delay=busy_delay_s(msg.metadata.num_delivered, self._busy_base_s))
            return
        try:
            await self._claimed(msg, work)
        finally:
            if gate is not None:
                gate.done(work.task_id)

    async def _claimed(self, msg: Msg, work: Work) -> None:
        try:
            task = await self._claims.submit((work.task_id, msg.metadata.num_delivered > 1))
        except Exception as exc:  # Postgres unavailable: leave it unacknowledged, retry later
            log.warning("claim of %s failed (%s); it will be redelivered", work.task_id, exc)
            await msg.nak(delay=2.0)
            return
        if task is None:
            await msg.ack()  # finished, cancelled or being run elsewhere: nothing to do
            return
        self._held[task.id] = msg
        try:
            await self._bus.event(task.id, "started", "running", attempt=task.attempts)
            if telemetry.TRACER is None:
                outcome = await self._run(task)
            elif (decision := telemetry.decide((msg.headers or {}).get("traceparent"), root=False)).passed is not None:
                # created outside a recorded trace: not recorded either, and the calls it makes carry no context
                token = telemetry.passing(decision.passed)
                try:
                    outcome = await self._run(task)
                finally:
                    telemetry.stop_passing(token)
            else:  # the span continues the trace of the task's creation (traceparent in the message headers)
                with telemetry.TRACER.start_as_current_span(
                    f"run {task.task_type} task", context=telemetry.context_from_headers(msg.headers),
                    kind=SpanKind.CONSUMER, attributes={
                        "messaging.system": "nats", "messaging.destination.name": msg.subject,
                        "sutazai.task_id": task.id, "sutazai.task_type": task.task_type,
                        "sutazai.attempt": task.attempts}) as span:
                    outcome = await self._run(task)
                    span.set_attribute("sutazai.task_outcome", outcome[0])
            await self._finish(task, outcome, msg)
        finally:
            self._held.pop(task.id, None)

    async def _run(self, task: TaskRow) -> Outcome:
        handler = self._handlers.get(task.task_type)
        if handler is None:
            return "fail", f"no handler for task_type {task.task_type!r}"

        async def progress(token: str) -> None:
            await self._bus.event(task.id, "progress", "running", token=token)

        started = time.perf_counter()
        job = asyncio.ensure_future(handler(task, progress))
        self._running[task.id] = job
        deadline = asyncio.timeout(task.timeout_s)
        try:
            async with deadline:
                result = await job
        except asyncio.CancelledError:
            if job.cancelled() and not _current_task_cancelling():
                return "cancelled", None
            raise
        except TimeoutError as exc:
            if deadline.expired():
                return "retry", f"timed out after {task.timeout_s} s"
            return "retry", f"TimeoutError: {exc}"
        except ParkedError:
            return "parked", None
        except Busy as exc:
            return "busy", str(exc)
        except PermanentError as exc:
            return "fail", str(exc)
        except Exception as exc:
            return "retry", f"{type(exc).__name__}: {exc}"
        finally:
            self._running.pop(task.id, None)
            metrics.TASK_SECONDS.labels(task.task_type).observe(time.perf_counter() - started)
        return "ok", result

    async def _finish(self, task: TaskRow, outcome: Outcome, msg: Msg) -> None:
        kind, value = outcome
        try:
            if kind == "ok":
                result = RawJson(dump_json(value))
                try:
                    recorded = await self._completions.submit((task.id, result))
                except Exception as exc:
                    log.warning("recording the result of %s failed (%s); it will be redelivered", task.id, exc)
                    await msg.nak(delay=2.0)
                    return
                if recorded:
                    metrics.TASKS_FINISHED.labels(task.task_type, "completed").inc()
                    await self._bus.event(task.id, "completed", "completed", result=result)
            elif kind == "busy":
                if await self._store.release([task.id]):
                    metrics.TASKS_DEFERRED.labels(task.task_type, "model").inc()
                    delay = busy_delay_s(msg.metadata.num_delivered, self._busy_base_s)
                    await self._bus.event(task.id, "deferred", "retrying" if task.attempts > 1 else "queued",
                                          reason=value, retry_in_s=round(delay, 2))
                    await msg.nak(delay=delay)
                    return
            elif kind in ("cancelled", "parked"):
                pass  # the cancel (or the park) already moved the row and told the subscribers
            elif kind == "retry" and task.attempts < task.max_attempts:
                if await self._store.finish_unsuccessfully(task.id, "retrying", value):
                    delay = backoff_s(task.attempts, self._retry_base_s)
                    await self._bus.event(task.id, "retrying", "retrying", error=value, retry_in_s=delay)
                    await msg.nak(delay=delay)
                    return
            elif kind == "retry":
                if await self._store.finish_unsuccessfully(task.id, "dead", value):
                    await self._bus.dead_letter(task, value)
                    metrics.TASKS_FINISHED.labels(task.task_type, "dead").inc()
                    await self._bus.event(task.id, "dead", "dead", error=value)
            elif await self._store.finish_unsuccessfully(task.id, "failed", value):
                metrics.TASKS_FINISHED.labels(task.task_type, "failed").inc()
                await self._bus.event(task.id, "failed", "failed", error=value)
            await msg.ack()
        except Exception as exc:  # leave it unacknowledged: redelivery finds the committed state
            log.warning("finishing task %s failed: %s", task.id, exc)

    # --- statements shared by the tasks of a moment -------------------------------------------------

    async def _claim_many(self, items: Sequence[tuple[str, bool]]) -> list[TaskRow | None]:
        fresh = [task_id for task_id, again in items if not again]
        redelivered = [task_id for task_id, again in items if again]
        rows = {row.id: row for row in await self._store.claim(fresh, redelivered)}
        # A task id twice in one batch (a duplicate message) is run once: the first gets the row.
        return [rows.pop(task_id, None) for task_id, _ in items]

    async def _complete_many(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        recorded = await self._store.complete(items)
        return [task_id in recorded for task_id, _ in items]


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current and current.cancelling())
