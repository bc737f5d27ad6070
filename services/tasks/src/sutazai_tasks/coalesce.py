"""Coalesce concurrent task creations into one multi-row INSERT.

Each CreateTask call still gets its own row and reply; calls that arrive while an INSERT is in flight
wait for the next one and go together. Under load this turns N round trips and N statements into
a few; when idle a call goes alone, without waiting for company.
"""

from __future__ import annotations

import asyncio

from sutazai_tasks.model import NewTask, TaskRow
from sutazai_tasks.store import TaskStore


class CreateCoalescer:
    def __init__(self, store: TaskStore, max_batch: int = 200) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: list[tuple[NewTask, asyncio.Future[tuple[TaskRow, bool]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def create(self, task: NewTask) -> tuple[TaskRow, bool]:
        future: asyncio.Future[tuple[TaskRow, bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((task, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                results = await self._store.create_many([task for task, _ in batch])
            except Exception as exc:  # every caller in the batch sees the failure (and may retry)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
