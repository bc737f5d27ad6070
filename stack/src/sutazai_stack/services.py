"""The six services: how to start each one, on which ports, and how to know it is ready."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sutazai_stack import credentials
from sutazai_stack.config import StackSettings
from sutazai_stack.infra import Resolved
from sutazai_stack.ports import free_port
from sutazai_stack.processes import ManagedProcess

GRPC_SERVICES = ("agents", "tasks", "mesh", "chat", "memory")
STANDARD_GRPC = {"agents": 50051, "tasks": 50052, "mesh": 50053, "chat": 50054, "memory": 50055}
STANDARD_METRICS = {"gateway": 9101, "agents": 9102, "tasks": 9103, "mesh": 9104, "chat": 9105, "memory": 9106}
GATEWAY_PORT = 10010


@dataclass
class ServicePorts:
    port: int  # gRPC for a context service, HTTP for the gateway
    metrics: int


def instance_names(name: str, count: int) -> list[str]:
    """Process names of a service's instances: ``agents``, ``agents-2``, ..."""
    return [name] + [f"{name}-{i}" for i in range(2, count + 1)]


def assign_ports(settings: StackSettings, counts: dict[str, int] | None = None) -> dict[str, ServicePorts]:
    """Ports per process name. The first instance of each service takes the standard ports (or free ones with
    ``free_ports``); further instances always take free ones."""
    counts = counts or {}
    if settings.free_ports:
        ports = {name: ServicePorts(free_port(), free_port()) for name in ("gateway", *GRPC_SERVICES)}
    else:
        ports = {name: ServicePorts(STANDARD_GRPC[name], STANDARD_METRICS[name]) for name in GRPC_SERVICES}
        ports["gateway"] = ServicePorts(GATEWAY_PORT, STANDARD_METRICS["gateway"])
    for name in GRPC_SERVICES:
        for extra in instance_names(name, counts.get(name, 1))[1:]:
            ports[extra] = ServicePorts(free_port(), free_port())
    return ports


def service_env(
    name: str, ports: dict[str, ServicePorts], infra: dict[str, Resolved], settings: StackSettings,
    instance: str | None = None,
) -> dict[str, str]:
    """The environment of service ``name``'s process ``instance`` (default: its first, named like it)."""
    instance = instance or name
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        DATABASE_URL=infra["postgres"].url,
        REDIS_URL=infra["redis"].url,
        NATS_URL=infra["nats"].url,
        SUTAZAI_MODEL_URL=infra["model_server"].url,
    )
    if "embeddings" in infra:
        env["SUTAZAI_EMBEDDINGS_URL"] = infra["embeddings"].url
    prefix = f"SUTAZAI_{name.upper()}_"
    env[prefix + "LOG_LEVEL"] = settings.log_level
    env[prefix + "METRICS_PORT"] = str(ports[instance].metrics)
    env["SUTAZAI_DISCOVERY_BUCKET"] = settings.registry_bucket
    env = credentials.identity_env(settings.home.resolve(), env, mints=name == "gateway")
    if name == "gateway":
        env.update(credentials.gateway_env(credentials.load_or_create(settings.home.resolve()), env))
        env[prefix + "PORT"] = str(ports[name].port)
        env[prefix + "HOST"] = settings.gateway_host
        for upstream in GRPC_SERVICES:
            env[f"{prefix}{upstream.upper()}_ADDR"] = f"127.0.0.1:{ports[upstream].port}"
    else:
        env[prefix + "GRPC_PORT"] = str(ports[instance].port)
        index = instance.rpartition("-")[2] if instance != name else "1"
        env[prefix + "INSTANCE_ID"] = f"{name}-{index}"
    if name == "memory":
        env[prefix + "CHAT_ADDR"] = f"127.0.0.1:{ports['chat'].port}"  # embeddings and fact inference
        # The in-process vector engine (Qdrant Edge) locks its folder: one memory process per folder (scale with a
        # Qdrant server, QDRANT_URL).
        env.setdefault(prefix + "DATA_DIR", str(settings.home.resolve() / "memory"))
    if name == "chat":
        env[prefix + "AGENTS_ADDR"] = f"127.0.0.1:{ports['agents'].port}"  # a chat's agent_id: the agent's prompt
    if name == "agents":
        env[prefix + "CHAT_ADDR"] = f"127.0.0.1:{ports['chat'].port}"  # agents asks chat which models are served
    if settings.database_name != "sutazai":
        # Stacks that share NATS and Redis but not a database (tests, benchmarks) must not take each
        # other's work nor share a response cache and its counters.
        if name == "tasks":
            env.setdefault("SUTAZAI_TASKS_NAMESPACE", settings.database_name)
        if name == "chat":
            env.setdefault(prefix + "CACHE_PREFIX", f"sutazai:{settings.database_name}:chat:")
        if name == "gateway":  # rate-limit counters, the API cache and its counters
            env.setdefault(prefix + "CACHE_PREFIX", f"sutazai:{settings.database_name}:gateway:")
    return env


def process_for(name: str, env: dict[str, str], home: Path, instance: str | None = None) -> ManagedProcess:
    instance = instance or name
    process = ManagedProcess(instance, [sys.executable, "-m", f"sutazai_{name}"], env=env,
                             log_path=home / "logs" / f"{instance}.log")
    process.service = name
    return process


TASK_WORKERS = 2


def worker_for(index: int, ports: dict[str, ServicePorts], tasks_env: dict[str, str], home: Path) -> ManagedProcess:
    """A task worker process (``python -m sutazai_tasks worker``); add more to scale out."""
    # the workers sign the identity of a task's owner: the private key too (the tasks server has none)
    env = credentials.identity_env(home.resolve(), {**tasks_env, **_configured_private_key()}, mints=True)
    env["SUTAZAI_TASKS_AGENTS_ADDR"] = f"127.0.0.1:{ports['agents'].port}"
    env["SUTAZAI_TASKS_CHAT_ADDR"] = f"127.0.0.1:{ports['chat'].port}"
    env["SUTAZAI_TASKS_MEMORY_ADDR"] = f"127.0.0.1:{ports['memory'].port}"  # agents with `memory: true`
    env["SUTAZAI_TASKS_TASKS_ADDR"] = f"127.0.0.1:{ports['tasks'].port}"  # its McpService runs agents' MCP tools
    name = f"tasks-worker-{index}"
    return ManagedProcess(name, [sys.executable, "-m", "sutazai_tasks", "worker"], env=env,
                          log_path=home / "logs" / f"{name}.log")


def _configured_private_key() -> dict[str, str]:
    configured = os.environ.get(credentials.PRIVATE_KEY_VAR)
    return {credentials.PRIVATE_KEY_VAR: configured} if configured else {}


def grpc_serving(port: int) -> None:
    """Raise unless the service on ``port`` answers SERVING on grpc.health.v1."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise ConnectionError(f"health is {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")


def gateway_answers(url: str) -> None:
    with urllib.request.urlopen(url + "/health", timeout=2) as response:
        json.load(response)
