"""The worker loop: pull work by priority, claim in Postgres, run, record, then acknowledge.

At-least-once delivery with an exactly-once effect: a message is acknowledged only after its
outcome is committed, and every state change is guarded (``store``), so a redelivered message finds
the task already finished and is simply acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import FetchTimeoutError

from sutazai_tasks import metrics
from sutazai_tasks.bus import ACK_WAIT_S, TaskBus
from sutazai_tasks.errors import ParkedError, PermanentError
from sutazai_tasks.handlers import Handler
from sutazai_tasks.model import PRIORITY_CLASSES, TaskRow, backoff_s
from sutazai_tasks.store import TaskStore

log = logging.getLogger(__name__)

# How long each priority's fetch may wait when it is empty: the highest are only glanced at, the lowest
# waits longest, so an idle worker makes few requests and a high task never waits behind a low batch.
_FETCH_WAIT_S = {"high": 0.02, "normal": 0.02, "low": 0.25}


def _task_id(msg: Msg) -> str | None:
    try:
        return str(json.loads(msg.data)["task_id"])
    except (ValueError, KeyError, TypeError):
        return None


class Worker:
    def __init__(
        self, store: TaskStore, bus: TaskBus, handlers: dict[str, Handler], *, batch: int = 100,
        retry_base_s: float = 1.0, max_in_flight: int = 500, stop_grace_s: float = 3.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._handlers = handlers
        self._batch = batch
        self._retry_base_s = retry_base_s
        self._max_in_flight = max_in_flight
        self._stop_grace_s = stop_grace_s
        self._in_flight = 0
        self._room = asyncio.Event()
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        subs = {
            klass: await self._bus.js.pull_subscribe_bind(
                durable=self._bus.names.consumer(klass), stream=self._bus.names.tasks_stream
            )
            for klass in PRIORITY_CLASSES
        }
        cancels = await self._bus.nc.subscribe(self._bus.names.cancel_all, cb=self._on_cancel)
        log.info("worker pulling from %s", ", ".join(self._bus.names.work(k) for k in PRIORITY_CLASSES))
        batches: set[asyncio.Task[None]] = set()
        try:
            # Batches run concurrently, so a long task (an agent, an orchestration waiting for its
            # children) never stops this loop from pulling more work, up to max_in_flight messages.
            while not stop.is_set():
                room = self._max_in_flight - self._in_flight
                if room <= 0:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), 0.5)
                    continue
                msgs = await self._fetch(subs, min(self._batch, room))
                if msgs:
                    self._in_flight += len(msgs)
                    batch = asyncio.create_task(self._process_counted(msgs))
                    batches.add(batch)
                    batch.add_done_callback(batches.discard)
        finally:
            # Finish what is in hand for a moment; anything left unacknowledged is redelivered.
            if batches:
                await asyncio.wait(batches, timeout=self._stop_grace_s)
                for batch in batches:
                    batch.cancel()
            with contextlib.suppress(Exception):
                await cancels.unsubscribe()

    async def _process_counted(self, msgs: list[Msg]) -> None:
        try:
            await self._process(msgs)
        except Exception:
            log.exception("processing a batch failed; its messages will be redelivered")
        finally:
            self._in_flight -= len(msgs)
            self._room.set()

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

    async def _process(self, msgs: list[Msg]) -> None:
        by_id: dict[str, Msg] = {}
        for msg in msgs:
            task_id = _task_id(msg)
            if task_id is None:
                log.error("dropping a malformed work message: %r", msg.data[:200])
                await msg.term()
            else:
                by_id[task_id] = msg
        fresh = [i for i, m in by_id.items() if m.metadata.num_delivered <= 1]
        redelivered = [i for i, m in by_id.items() if m.metadata.num_delivered > 1]
        try:
            claimed = await self._store.claim(fresh, redelivered)
        except Exception as exc:  # Postgres unavailable: leave the messages unacknowledged, retry later
            log.warning("claim failed (%s); %d messages will be redelivered", exc, len(by_id))
            for msg in by_id.values():
                await msg.nak(delay=2.0)
            await asyncio.sleep(0.5)
            return
        for task_id in set(by_id) - {t.id for t in claimed}:
            await by_id[task_id].ack()  # finished, cancelled or being run elsewhere: nothing to do
        if not claimed:
            return
        for task in claimed:
            await self._bus.event(task.id, "started", "running", attempt=task.attempts)
        keepalive = asyncio.create_task(self._keep_alive([by_id[t.id] for t in claimed]))
        try:
            outcomes = await asyncio.gather(*(self._run(task) for task in claimed))
        finally:
            keepalive.cancel()
        await self._record(claimed, outcomes, by_id)

    async def _keep_alive(self, msgs: list[Msg]) -> None:
        """Tell JetStream the batch is still being worked on, so long tasks are not redelivered."""
        while True:
            await asyncio.sleep(ACK_WAIT_S / 3)
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _run(self, task: TaskRow) -> tuple[str, Any]:
        """("ok", result) | ("retry", error) | ("fail", error) | ("cancelled", None) | ("parked", None)."""
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
        except PermanentError as exc:
            return "fail", str(exc)
        except Exception as exc:
            return "retry", f"{type(exc).__name__}: {exc}"
        finally:
            self._running.pop(task.id, None)
            metrics.TASK_SECONDS.labels(task.task_type).observe(time.perf_counter() - started)
        return "ok", result

    async def _record(self, tasks: list[TaskRow], outcomes: list[tuple[str, Any]], by_id: dict[str, Msg]) -> None:
        successes = [(t.id, o[1]) for t, o in zip(tasks, outcomes, strict=True) if o[0] == "ok"]
        try:
            recorded = await self._store.complete(successes)
        except Exception as exc:
            log.warning("recording %d results failed (%s); they will be redelivered", len(successes), exc)
            for task_id, _ in successes:
                await by_id[task_id].nak(delay=2.0)
            recorded = None
        for task, (outcome, value) in zip(tasks, outcomes, strict=True):
            msg = by_id[task.id]
            try:
                if outcome == "ok":
                    if recorded is None:
                        continue
                    if task.id in recorded:
                        metrics.TASKS_FINISHED.labels(task.task_type, "completed").inc()
                        await self._bus.event(task.id, "completed", "completed", result=value)
                elif outcome in ("cancelled", "parked"):
                    pass  # the cancel (or the park) already moved the row and told the subscribers
                elif outcome == "retry" and task.attempts < task.max_attempts:
                    if await self._store.finish_unsuccessfully(task.id, "retrying", value):
                        delay = backoff_s(task.attempts, self._retry_base_s)
                        await self._bus.event(task.id, "retrying", "retrying", error=value, retry_in_s=delay)
                        await msg.nak(delay=delay)
                        continue
                elif outcome == "retry":
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


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current and current.cancelling())
