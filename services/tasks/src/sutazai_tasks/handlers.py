"""What a task does, by type. A handler gets the task and a ``progress`` callback and returns a
JSON-serialisable result (or ``RawJson``); it raises ``PermanentError`` for failures a retry cannot fix and
``Busy`` when the model is at capacity (the task goes back to the queue, no attempt spent).

A handler may also be a ``Gate``: the worker asks it to ``admit`` a work message before claiming the task,
and tells it when the task is ``done``. The agent runner uses that to keep its in-flight work per model
within the model's capacity.

The agent run, step by step (``AgentRunner.__call__``): the agent's definition (fetched once per task),
the chat request built from it (``_chat_request``), the model's streamed reply through ``chat``
(``_stream``), the result (``_result``). Tool use and memory lookups hook in between those steps.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import grpc
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.identity import Identity, ProofMinter
from sutazai_runtime.resilience.upstream import Upstream, stub_of

from sutazai_tasks.agent_run import AgentRun
from sutazai_tasks.bus import Work
from sutazai_tasks.capacity import UNKNOWN, ModelSlots
from sutazai_tasks.errors import Busy, PermanentError
from sutazai_tasks.memory_context import MemoryContext, Recall, with_recall
from sutazai_tasks.model import CallMetadata, RawJson, TaskRow
from sutazai_tasks.tools import Toolbox

Progress = Callable[[str], Awaitable[None]]
Handler = Callable[[TaskRow, Progress], Awaitable[Any]]

# Background work: chat serves calls without this metadata (people) first and keeps slots for them.
PRIORITY_KEY = "sutazai-priority"
BACKGROUND = (PRIORITY_KEY, "background")

# gRPC codes that a later attempt may not see again.
_RETRYABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
})
# chat's own "at capacity" error (tagged in trailing metadata, so it is not mistaken for a proxy's).
_CHAT_OVERLOADED = "OverloadedError"


@runtime_checkable
class Gate(Protocol):
    async def admit(self, work: Work) -> bool:
        """True: claim and run the task now (a slot is held until ``done``). False: put it back."""

    def done(self, task_id: str) -> None:
        """The task admitted as ``task_id`` finished, however it ended: free its slot."""


async def echo(task: TaskRow, progress: Progress) -> Any:
    """Returns its payload, as stored, and calls no model: for health checks and benchmarks."""
    return RawJson(task.payload_json)


def is_capacity_error(exc: grpc.aio.AioRpcError) -> bool:
    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return False
    trailing = exc.trailing_metadata() or ()
    return any(k == "sutazai-error" and v == _CHAT_OVERLOADED for k, v in trailing)


class AgentRunner:
    """Runs an agent: its definition from ``agents``, its prompt through ``chat``, tokens as progress. An
    agent whose ``tools`` name tools that exist runs the tool loop of ``agent_run`` instead.

    As a ``Gate`` it holds at most ``slots.limit(model)`` tasks per model in flight. The model of an agent
    is learned when the agent is first fetched; until then, its tasks share the ``UNKNOWN`` slots."""

    def __init__(self, agents: grpc.aio.Channel | Upstream, chat: grpc.aio.Channel | Upstream,
                 minter: ProofMinter, slots: ModelSlots | None = None, *,
                 admit_wait_s: float = 2.0, agent_model_ttl_s: float = 60.0, toolbox: Toolbox | None = None,
                 run: AgentRun | None = None, memory: MemoryContext | None = None) -> None:
        self._agents = stub_of(agents, agents_pb2_grpc.AgentServiceStub)
        self._chat = stub_of(chat, chat_pb2_grpc.ChatServiceStub)
        self._minter = minter  # signs the task owner's identity on every call made for them
        self._slots = slots or ModelSlots()
        self._admit_wait_s = admit_wait_s
        self._ttl_s = agent_model_ttl_s
        self._models: dict[str, tuple[str, float]] = {}  # agent id -> (model, when learned)
        self._held: dict[str, str] = {}  # task id -> the model whose slot it holds
        self._toolbox = toolbox
        self._run = run
        self._memory = memory

    # --- Gate ----------------------------------------------------------------------------------------

    def _model_of(self, agent_id: str) -> str:
        known = self._models.get(agent_id)
        if known is None or time.monotonic() - known[1] > self._ttl_s:
            return UNKNOWN
        return known[0]

    async def admit(self, work: Work) -> bool:
        model = self._model_of(work.agent_id)
        if not await self._slots.acquire(model, self._admit_wait_s):
            return False
        self._held[work.task_id] = model
        return True

    def done(self, task_id: str) -> None:
        model = self._held.pop(task_id, None)
        if model is not None:
            self._slots.release(model)

    async def _hold(self, task_id: str, model: str) -> None:
        """Move the task's slot to ``model`` (its agent's model turned out other than assumed), or Busy."""
        held = self._held.get(task_id)
        if held == model or held is None:
            return
        if not await self._slots.acquire(model, self._admit_wait_s):
            raise Busy(f"model {model!r} is at capacity in this worker")
        self._slots.release(held)
        self._held[task_id] = model

    # --- the run -------------------------------------------------------------------------------------

    async def __call__(self, task: TaskRow, progress: Progress) -> Any:
        metadata, background = self.on_behalf_of(task.owner_id)
        try:
            agent = await self._agents.GetAgent(agents_pb2.GetAgentRequest(id=task.agent_id or ""),
                                                metadata=metadata(), timeout=10)
            self._models[agent.id] = (agent.model, time.monotonic())
            await self._hold(task.id, agent.model)
            question = str(task.payload().get("input", ""))
            recall = (await self._memory.recall(question, agent.id, metadata)
                      if agent.memory and self._memory else None)  # memory_context.py
            if agent.tools and self._toolbox is not None and self._run is not None:
                tools = await self._toolbox.resolve(list(agent.tools), list(agent.requires_approval), metadata)
                if tools:  # the tool loop gets the same recall, in its system prompt (memory_context.py)
                    ran = await self._run(task, with_recall(agent, recall), tools, background, progress)
                    return await self._memory.finish(ran, recall, task, metadata) if recall and self._memory else ran
            text, done = await self._stream(self._chat_request(agent, task, recall), background(),
                                            task.timeout_s, progress)
        except grpc.aio.AioRpcError as exc:
            message = f"{exc.code().name}: {exc.details()}"
            if is_capacity_error(exc):
                raise Busy(message) from exc
            if exc.code() in _RETRYABLE_CODES:
                raise ConnectionError(message) from exc
            raise PermanentError(message) from exc
        result = self._result(agent, text, done)
        if recall is not None and self._memory is not None:
            result = await self._memory.finish(result, recall, task, metadata)
        return result

    def on_behalf_of(self, owner_id: str) -> tuple[CallMetadata, CallMetadata]:
        """(metadata, background metadata) of calls made for ``owner_id``: the owner's identity, signed by this
        worker (issuer ``tasks-worker``) and fresh at each call. The task row names the owner; messages on
        NATS carry only ids. The owner acts with the plain ``user`` role (task rows keep no roles)."""
        owner = Identity(owner_id)

        def metadata() -> tuple[tuple[str, str], ...]:
            return self._minter.metadata(owner)

        def background() -> tuple[tuple[str, str], ...]:
            return (*self._minter.metadata(owner), BACKGROUND)

        return metadata, background

    @staticmethod
    def _chat_request(agent: agents_pb2.Agent, task: TaskRow, recall: Recall | None = None) -> chat_pb2.ChatRequest:
        """The whole request from the definition in hand (no agent_id: chat would fetch the agent again)."""
        request = chat_pb2.ChatRequest(
            messages=[chat_pb2.Message(role="user", content=str(task.payload().get("input", "")))],
            model=agent.model, system=(recall or Recall()).system_prompt(agent.system_prompt), use_cache=False,
        )
        if agent.HasField("temperature"):
            request.temperature = agent.temperature
        if agent.HasField("max_tokens"):
            request.max_tokens = agent.max_tokens
        return request

    async def _stream(self, request: chat_pb2.ChatRequest, metadata: tuple[tuple[str, str], ...], timeout_s: float,
                      progress: Progress) -> tuple[str, chat_pb2.ChatResponse | None]:
        parts: list[str] = []
        done: chat_pb2.ChatResponse | None = None
        async for chunk in self._chat.ChatStream(request, metadata=metadata, timeout=timeout_s):
            if chunk.HasField("done"):
                done = chunk.done
            elif chunk.token:
                parts.append(chunk.token)
                await progress(chunk.token)
        return "".join(parts), done

    @staticmethod
    def _result(agent: agents_pb2.Agent, text: str, done: chat_pb2.ChatResponse | None) -> dict[str, Any]:
        result: dict[str, Any] = {"output": text, "agent_id": agent.id, "model": agent.model}
        if done is not None:
            result.update(model=done.model or agent.model, backend=done.backend,
                          usage={"prompt_tokens": done.usage.prompt_tokens,
                                 "completion_tokens": done.usage.completion_tokens})
        return result
