"""A durable agent run with tools: model -> tool calls -> tool results -> model, until a final answer or
``max_steps`` model calls (the last one may not call tools).

Every step is committed (``steps``) before the next one starts and published as a task event
(``tool_call``, ``tool_result``; the model's tokens as ``progress``). The run is rebuilt from its committed
steps each time a worker takes the task, so a worker killed mid-run loses nothing and a tool call whose
result was committed never runs again. Just before a tool runs, a ``tool_call`` step records that it was
started: a call found started without a result when the run resumes (the worker died while it ran) is not
run again unless the tool is ``repeatable`` (the platform's own tools are: read-only, or idempotent); the
model reads that it may or may not have taken effect. A tool marked ``requires_approval`` parks the run
(``waiting_approval``) until the owner decides; a rejection reaches the model as the tool's result."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import grpc
from sutazai.agents.v1 import agents_pb2
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.resilience.upstream import stub_of

from sutazai_tasks.bus import TaskBus
from sutazai_tasks.errors import ParkedError, PermanentError
from sutazai_tasks.model import CallMetadata, TaskRow
from sutazai_tasks.steps import Step, StepStore
from sutazai_tasks.tools import Toolbox, ToolSpec

Progress = Any  # Callable[[str], Awaitable[None]]


class SupersededError(PermanentError):
    """The task stopped running under this worker (cancelled, or taken over): the run must not go on."""


def _messages(task: TaskRow, steps: Sequence[Step]) -> list[chat_pb2.Message]:
    messages = [chat_pb2.Message(role="user", content=str(task.payload().get("input", "")))]
    for step in steps:
        if step.kind == "model":
            messages.append(chat_pb2.Message(role="assistant", content=step.data.get("content", ""), tool_calls=[
                chat_pb2.ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"], index=i)
                for i, c in enumerate(step.data.get("tool_calls", ()))]))
        elif step.kind == "tool_result":
            messages.append(chat_pb2.Message(role="tool", tool_call_id=step.data["call_id"],
                                             name=step.data.get("model_name", ""), content=step.data["content"]))
    return messages


def _pending(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """The calls of the last model step that have no committed result yet."""
    last = next((s for s in reversed(steps) if s.kind == "model"), None)
    if last is None:
        return []
    done = {s.data["call_id"] for s in steps if s.kind == "tool_result" and s.seq > last.seq}
    return [c for c in last.data.get("tool_calls", ()) if c["id"] not in done]


def _summary(step: Step) -> dict[str, Any]:
    return {"seq": step.seq, "kind": step.kind, **step.data}


class AgentRun:
    def __init__(self, chat: grpc.aio.Channel, steps: StepStore, toolbox: Toolbox, bus: TaskBus, *,
                 default_max_steps: int, tool_timeout_s: float) -> None:
        self._chat = stub_of(chat, chat_pb2_grpc.ChatServiceStub)
        self._steps = steps
        self._toolbox = toolbox
        self._bus = bus
        self._default_max_steps = default_max_steps
        self._tool_timeout_s = tool_timeout_s
        self._worker = os.getpid()  # in events: which worker ran the step

    async def __call__(self, task: TaskRow, agent: agents_pb2.Agent, tools: Sequence[ToolSpec],
                       metadata: CallMetadata, progress: Progress) -> dict[str, Any]:
        by_model_name = {t.model_name: t for t in tools}
        max_steps = agent.max_steps if agent.HasField("max_steps") else self._default_max_steps
        steps = await self._steps.steps(task.id)
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        while True:
            for call in _pending(steps):
                steps.append(await self._run_tool(task, call, by_model_name.get(call["name"]), steps, metadata))
                # (_run_tool appends the call's ``tool_call`` step itself, before the tool runs)
            model_steps = [s for s in steps if s.kind == "model"]
            if model_steps and not model_steps[-1].data.get("tool_calls"):
                final = model_steps[-1].data
                return {"output": final.get("content", ""), "agent_id": agent.id, "model": final.get("model") or
                        agent.model, "steps": [_summary(s) for s in steps], "usage": usage,
                        "tool_calls": sum(len(s.data.get("tool_calls", ())) for s in model_steps)}
            if len(model_steps) + 1 >= max_steps:
                choice = "none"  # the last model call answers
            elif not model_steps and task.payload().get("tool_choice"):
                choice = str(task.payload()["tool_choice"])  # the caller may force the first call
            else:
                choice = "auto"
            step = await self._model_step(task, agent, tools, steps, choice, metadata, progress, usage)
            steps.append(step)

    async def _commit(self, task: TaskRow, steps: list[Step], kind: Any, data: dict[str, Any]) -> Step:
        seq = steps[-1].seq + 1 if steps else 0
        if not await self._steps.commit(task.id, seq, kind, data, task.attempts):
            raise SupersededError(f"step {seq} of task {task.id} not recorded: the task is no longer running here")
        return Step(seq, kind, data)

    async def _model_step(self, task: TaskRow, agent: agents_pb2.Agent, tools: Sequence[ToolSpec],
                          steps: list[Step], choice: str, metadata: CallMetadata, progress: Progress,
                          usage: dict[str, int]) -> Step:
        request = chat_pb2.ChatRequest(
            messages=_messages(task, steps), model=agent.model, system=agent.system_prompt, use_cache=False,
            tools=[chat_pb2.Tool(name=t.model_name, description=t.description,
                                 parameters_json=json.dumps(t.parameters)) for t in tools],
        )
        if choice in ("auto", "none", "required"):
            request.tool_choice = choice
        else:
            wanted = next((t.model_name for t in tools if choice in (t.name, t.model_name)), None)
            if wanted is None:
                raise PermanentError(f"payload.tool_choice: {choice!r} is not one of the agent's tools")
            request.tool_choice, request.tool_choice_function = "function", wanted
        if agent.HasField("temperature"):
            request.temperature = agent.temperature
        if agent.HasField("max_tokens"):
            request.max_tokens = agent.max_tokens
        parts: list[str] = []
        done: chat_pb2.ChatResponse | None = None
        async for chunk in self._chat.ChatStream(request, metadata=metadata(), timeout=task.timeout_s):
            if chunk.HasField("done"):
                done = chunk.done
            elif chunk.token:
                parts.append(chunk.token)
                await progress(chunk.token)
        if done is None:
            raise ConnectionError("the chat stream ended without its final chunk")
        usage["prompt_tokens"] += done.usage.prompt_tokens
        usage["completion_tokens"] += done.usage.completion_tokens
        seq = steps[-1].seq + 1 if steps else 0
        calls = [{"id": f"call_{seq}_{i}", "name": c.name, "arguments": c.arguments or "{}"}
                 for i, c in enumerate(done.tool_calls)]  # ids unique within the run, stable once committed
        step = await self._commit(task, steps, "model", {"content": "".join(parts) or done.response,
                                                          "tool_calls": calls, "model": done.model})
        for call in calls:
            await self._bus.event(task.id, "tool_call", "running", step=step.seq, call_id=call["id"],
                                  tool=call["name"].replace("__", "/", 1), arguments=call["arguments"],
                                  worker=self._worker)
        return step

    async def _run_tool(self, task: TaskRow, call: dict[str, Any], spec: ToolSpec | None, steps: list[Step],
                        metadata: CallMetadata) -> Step:
        name = spec.name if spec else call["name"]
        is_error = True
        if spec is None:
            content = f"there is no tool named {call['name']!r}"
        else:
            try:
                arguments = json.loads(call["arguments"] or "{}")
                if not isinstance(arguments, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                arguments, content = None, f"the arguments are not a JSON object: {exc}"
            if arguments is not None:
                decision = next((s.data for s in steps if s.kind == "approval" and s.data.get("call_id") == call["id"]),
                                None)
                if spec.requires_approval and decision is None:
                    pending = {"call_id": call["id"], "tool": name, "arguments": arguments}
                    if not await self._steps.park(task.id, pending):
                        raise SupersededError(f"task {task.id} is no longer running here")
                    await self._bus.event(task.id, "waiting_approval", "waiting_approval", **pending)
                    raise ParkedError(f"waiting for approval of {name}")
                if decision is not None and not decision.get("approved"):
                    content = f"the call was rejected by a person: {decision.get('reason') or 'no reason given'}"
                elif not spec.repeatable and any(s.kind == "tool_call" and s.data.get("call_id") == call["id"]
                                                 for s in steps):
                    content = (f"this call of {name} was started before the run was interrupted and its result was "
                               "never recorded: it may or may not have taken effect. Check before calling it again.")
                else:
                    steps.append(await self._commit(task, steps, "tool_call", {"call_id": call["id"], "tool": name}))
                    outcome = await self._toolbox.call(spec, arguments, task, call["id"], metadata,
                                                       self._tool_timeout_s)
                    content, is_error = outcome.content, outcome.is_error
        step = await self._commit(task, steps, "tool_result", {
            "call_id": call["id"], "tool": name, "model_name": call["name"], "content": content,
            "is_error": is_error})
        await self._bus.event(task.id, "tool_result", "running", step=step.seq, call_id=call["id"], tool=name,
                              content=content[:2000], is_error=is_error, worker=self._worker)
        return step
