"""The chat service's exceptions. The servicer (``server.py``) maps each to a gRPC status; nothing else does.

    ChatError
    ├── InvalidRequestError       INVALID_ARGUMENT  empty message, prompt over the limit, bad parameters
    ├── ModelNotFoundError        NOT_FOUND         no backend serves the model; lists the available ones
    ├── AgentNotFoundError        NOT_FOUND         the request's agent_id names no agent
    ├── OverloadedError           RESOURCE_EXHAUSTED every candidate's wait queue is full (has retry_after_s)
    ├── NoBackendAvailableError   UNAVAILABLE       every backend serving the model failed or has an open breaker
    │   └── AgentsUnavailableError  UNAVAILABLE     the agents service did not answer
    ├── BackendError              UNAVAILABLE       a backend failed after the first token (no failover then)
    └── InvalidOutputError        INTERNAL          the model's structured output stayed invalid after a retry
"""

from __future__ import annotations


class ChatError(Exception):
    pass


class InvalidRequestError(ChatError):
    pass


class ModelNotFoundError(ChatError):
    def __init__(self, model: str, available: list[str]) -> None:
        self.model = model
        self.available = available
        listed = ", ".join(available) if available else "none"
        super().__init__(f"model {model!r} is not served by any backend; available models: {listed}")


class OverloadedError(ChatError):
    def __init__(self, model: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"every backend serving {model!r} is at its concurrency limit with a full queue; "
                         f"retry after {retry_after_s} s")


class NoBackendAvailableError(ChatError):
    pass


class AgentNotFoundError(ChatError):
    pass


class AgentsUnavailableError(NoBackendAvailableError):
    pass


class BackendError(ChatError):
    pass


class InvalidOutputError(ChatError):
    pass
