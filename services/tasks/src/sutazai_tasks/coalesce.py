"""Coalesce concurrent single-item calls into one batch call (one multi-row statement).

Each caller still gets its own result; calls that arrive while a batch is in flight wait for the next one
and go together. Under load this turns N round trips and N statements into a few; when idle a call goes
alone, without waiting for company. Used for task creation (``CreateTask``) and, in the workers, for claims
and completions, so each task is claimed and recorded on its own yet a burst costs a few statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sutazai_tasks.model import NewTask, TaskRow
from sutazai_tasks.store import TaskStore

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class Coalescer(Generic[I, O]):
    def __init__(self, run: Callable[[Sequence[I]], Awaitable[Sequence[O]]], max_batch: int = 200) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> O:
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:  # every caller in the batch sees the failure (and may retry)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class CreateCoalescer(Coalescer[NewTask, tuple[TaskRow, bool]]):
    """``TaskStore.create`` for concurrent callers, through ``create_many``."""

    def __init__(self, store: TaskStore, max_batch: int = 200) -> None:
        super().__init__(store.create_many, max_batch)

    async def create(self, task: NewTask) -> tuple[TaskRow, bool]:
        return await self.submit(task)
