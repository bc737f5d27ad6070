"""Errors of the task context. The servicer maps them to gRPC status codes; nothing else does.

    TaskError
    ├── InvalidTaskError        INVALID_ARGUMENT: the request is malformed
    ├── TaskNotFoundError       NOT_FOUND: unknown, or not the caller's
    └── TaskStateError          FAILED_PRECONDITION: e.g. cancelling a finished task

Handlers raise ``PermanentError`` for failures that a retry cannot fix; any other exception is
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
