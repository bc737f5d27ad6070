"""The JetStream streams the task context owns.

``TASKS`` is a work queue (each message is removed once acked); ``TASKS_DEAD`` keeps tasks that
exhausted their attempts; ``TASK_EVENTS`` carries ``events.tasks.<task_id>`` for the gateway to
relay, kept in memory for an hour so a late subscriber can catch up.

A namespace (``SUTAZAI_TASKS_NAMESPACE``) prefixes every stream and subject, so deployments that share
one NATS server but not one database never take each other's work. It is empty in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig


@dataclass(frozen=True, slots=True)
class Names:
    namespace: str = ""

    def _subject(self, subject: str) -> str:
        return f"{self.namespace}.{subject}" if self.namespace else subject

    def _stream(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    @property
    def tasks_stream(self) -> str:
        return self._stream("TASKS")

    def work(self, klass: str) -> str:
        return self._subject(f"tasks.work.{klass}")

    def dead(self, task_id: str) -> str:
        return self._subject(f"tasks.dead.{task_id}")

    def event(self, task_id: str) -> str:
        return self._subject(f"events.tasks.{task_id}")

    def cancel(self, task_id: str) -> str:
        return self._subject(f"tasks.control.cancel.{task_id}")

    @property
    def cancel_all(self) -> str:
        return self._subject("tasks.control.cancel.*")

    def consumer(self, klass: str) -> str:
        return f"workers-{klass}"

    def streams(self) -> tuple[StreamConfig, ...]:
        return (
            StreamConfig(
                name=self._stream("TASKS"), subjects=[self._subject("tasks.work.>")],
                retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
                duplicate_window=600.0,  # seconds; Nats-Msg-Id = task id de-duplicates re-publishes
            ),
            StreamConfig(
                name=self._stream("TASKS_DEAD"), subjects=[self._subject("tasks.dead.>")],
                retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, max_age=14 * 24 * 3600.0,
            ),
            # Events are fire-and-forget (Postgres has the state): memory storage, no disk write per event.
            StreamConfig(
                name=self._stream("TASK_EVENTS"), subjects=[self._subject("events.tasks.>")],
                retention=RetentionPolicy.LIMITS, storage=StorageType.MEMORY, max_age=3600.0,
                max_bytes=256 * 1024 * 1024, discard=DiscardPolicy.OLD,
            ),
        )

    def disposable(self, stream: str) -> bool:
        """A stream whose messages may be lost when its configuration changes (``ensure_stream``)."""
        return stream == self._stream("TASK_EVENTS")
