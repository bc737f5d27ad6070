"""The agent registry's errors. The servicer maps each to a gRPC status code; nothing else does.

::

    AgentsError
    ├── DefinitionError        INVALID_ARGUMENT     a definition (file or request) is not valid
    ├── AgentNotFoundError     NOT_FOUND            no agent has this id
    ├── AgentExistsError       ALREADY_EXISTS       the id is taken (by a file or a stored agent)
    └── ReadOnlyAgentError     FAILED_PRECONDITION  the agent comes from a file; edit the file instead
"""

from __future__ import annotations


class AgentsError(Exception):
    """Base of every error the registry raises on purpose."""


class DefinitionError(AgentsError, ValueError):
    """A definition is not valid. ``source`` names the file (or "request"); ``problems`` lists
    ``(field, message)`` pairs, the field being ``""`` when the problem is the whole document."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "; ".join(f"{field}: {message}" if field else message for field, message in problems)
        super().__init__(f"{source}: {lines}")


class AgentNotFoundError(AgentsError, LookupError):
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"no agent has the id {agent_id!r}")


class AgentExistsError(AgentsError):
    def __init__(self, agent_id: str, source: str) -> None:
        self.agent_id = agent_id
        where = "in a file" if source == "file" else "over the API"
        super().__init__(f"the id {agent_id!r} is taken by an agent defined {where}")


class ReadOnlyAgentError(AgentsError):
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} is defined in a file and is read-only; edit or remove its file instead")
