"""Errors of the task context. The servicer maps them to gRPC status codes; nothing else does.

    TaskError
    ├── InvalidTaskError        INVALID_ARGUMENT: the request is malformed
    ├── TaskNotFoundError       NOT_FOUND: unknown, or not the caller's
    └── TaskStateError          FAILED_PRECONDITION: e.g. cancelling a finished task

Handlers raise ``PermanentError`` for failures that a retry cannot fix, and ``Busy`` when the model is at
capacity (the task goes back to the queue with a delay and no attempt spent); any other exception is
retried with back-off until the task's attempts run out. ``ParkedError``: the handler moved the task to
``waiting_approval`` itself; the message is acknowledged and nothing else is recorded.
"""


class TaskError(Exception):
    pass


class InvalidTaskError(TaskError):
    pass


class TaskNotFoundError(TaskError):
    pass


class TaskStateError(TaskError):
    pass


class PermanentError(Exception):
    """A handler failure that retrying will not fix (bad payload, unknown agent, ...)."""


class ParkedError(Exception):
    """The handler parked its task (an agent run waiting for an approval): acknowledge, record nothing."""


class Busy(Exception):
    """The model (or every backend serving it) is at capacity: not a failure of the task. The worker puts
    the task back in the queue with a delay, without spending an attempt."""
