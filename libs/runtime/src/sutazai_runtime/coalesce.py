"""Coalesce concurrent single-item calls into one batch call.

Each caller still gets its own result; calls that arrive while a batch is in flight wait for the next one
and go together. Under load this turns N round trips into a few; when idle a call goes alone, without waiting
for company (no timer, so no added latency). Used by the tasks service for task creation (one multi-row
statement) and, in the workers, for claims and completions; by the gateway for task submissions (one
``CreateTasks`` call per burst of one user's ``POST /api/v1/tasks``).

A batch function answers one result per item, in order; a ``Failed`` result fails only its own caller. An
exception from the batch function fails every caller of that batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class Failed(NamedTuple):
    """The result of one item that failed on its own (its caller gets ``error`` raised)."""

    error: BaseException


class Coalescer(Generic[I, O]):
    def __init__(self, run: Callable[[Sequence[I]], Awaitable[Sequence[Any]]], max_batch: int = 200) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing waiting and no batch in flight."""
        return not self._pending and (self._flusher is None or self._flusher.done())

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
                if future.done():
                    continue
                if isinstance(result, Failed):
                    future.set_exception(result.error)
                else:
                    future.set_result(result)
