"""Task creation coalesced into one multi-row statement (the mechanism: ``sutazai_runtime.coalesce``, also
used by the workers for claims and completions)."""

from __future__ import annotations

from sutazai_runtime.coalesce import Coalescer

from sutazai_tasks.model import NewTask, TaskRow
from sutazai_tasks.store import TaskStore


class CreateCoalescer(Coalescer[NewTask, tuple[TaskRow, bool]]):
    """``TaskStore.create`` for concurrent callers, through ``create_many``."""

    def __init__(self, store: TaskStore, max_batch: int = 200) -> None:
        super().__init__(store.create_many, max_batch)

    async def create(self, task: NewTask) -> tuple[TaskRow, bool]:
        return await self.submit(task)
