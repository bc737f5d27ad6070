"""The JetStream streams the task context owns.

``TASKS`` is a work queue (each message is removed once acked); ``TASKS_DEAD`` keeps tasks that
exhausted their deliveries; ``TASK_EVENTS`` carries ``events.tasks.<task_id>`` for the gateway to
relay, kept for an hour so a late subscriber can catch up.
"""

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

TASKS = StreamConfig(
    name="TASKS",
    subjects=["tasks.work.>"],
    retention=RetentionPolicy.WORK_QUEUE,
    storage=StorageType.FILE,
    duplicate_window=600.0,  # seconds; Nats-Msg-Id = task id de-duplicates re-publishes
)
TASKS_DEAD = StreamConfig(
    name="TASKS_DEAD",
    subjects=["tasks.dead.>"],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_age=14 * 24 * 3600.0,
)
TASK_EVENTS = StreamConfig(
    name="TASK_EVENTS",
    subjects=["events.tasks.>"],
    retention=RetentionPolicy.LIMITS,
    storage=StorageType.FILE,
    max_age=3600.0,
    discard=DiscardPolicy.OLD,
)
ALL = (TASKS, TASKS_DEAD, TASK_EVENTS)
