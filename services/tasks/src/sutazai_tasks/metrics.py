from prometheus_client import Counter, Histogram

TASKS_CREATED = Counter("sutazai_tasks_created_total", "tasks created", ["task_type"])
TASKS_FINISHED = Counter("sutazai_tasks_finished_total", "tasks that reached a final state", ["task_type", "status"])
TASK_SECONDS = Histogram("sutazai_task_run_seconds", "time a handler ran", ["task_type"])
TASKS_DEFERRED = Counter("sutazai_tasks_deferred_total",
                         "tasks put back in the queue because their model was at capacity (no attempt spent)",
                         ["task_type", "where"])
