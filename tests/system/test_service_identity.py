"""Identity cannot be forged inside the network: straight to every service's gRPC port (agents, tasks, mesh,
chat, memory), a call with bare ``x-sutazai-user-id`` / ``x-sutazai-roles: admin`` metadata, or with a proof
that is garbage, expired, signed by another key, or has its roles changed, is refused with UNAUTHENTICATED;
the same call with a proof signed by the platform's key (the launcher's key pair in the stack's data folder)
works. The gateway signs with that key too: a REST call through it works."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import IDENTITY_KEY, ROLES_KEY, USER_ID_KEY, Identity, ProofMinter
from sutazai_runtime.identity.keys import PRIVATE_FILE, PUBLIC_FILE, load_private_key
from sutazai_runtime.resilience.upstream import Upstream, UpstreamPolicy

from tests.system.stack_runner import RunningStack, Servers, run_stack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

Metadata = tuple[tuple[str, str], ...]
# One call per service that needs an identity (an admin's where the service has admin calls), and what a
# caller that passed authentication gets back.
# ``make`` turns a generated stub class into a stub: on a plain channel, or through an Upstream that carries
# the calls on a Multiplex stream.
Stubs = Callable[[type], Any]
Call = Callable[[Stubs, Metadata], Awaitable[Any]]


async def _agents(make: Stubs, metadata: Metadata) -> Any:
    return await make(agents_pb2_grpc.AgentServiceStub).ListAgents(
        agents_pb2.ListAgentsRequest(), metadata=metadata, timeout=10)


async def _tasks(make: Stubs, metadata: Metadata) -> Any:
    return await make(tasks_pb2_grpc.TaskServiceStub).ListDeadTasks(
        tasks_pb2.ListDeadTasksRequest(), metadata=metadata, timeout=10)


async def _mesh(make: Stubs, metadata: Metadata) -> Any:
    stub = make(mesh_pb2_grpc.MeshServiceStub)
    instance = mesh_pb2.ServiceInstance(id="identity-probe", name="identity-probe", address="127.0.0.1", port=9)
    await stub.Register(mesh_pb2.RegisterRequest(instance=instance), metadata=metadata, timeout=10)
    return await stub.Deregister(mesh_pb2.DeregisterRequest(id="identity-probe"), metadata=metadata, timeout=10)


async def _chat(make: Stubs, metadata: Metadata) -> Any:
    return await make(chat_pb2_grpc.ChatServiceStub).ListModels(
        chat_pb2.ListModelsRequest(), metadata=metadata, timeout=10)


async def _memory(make: Stubs, metadata: Metadata) -> Any:
    return await make(memory_pb2_grpc.MemoryServiceStub).ListMemories(
        memory_pb2.ListMemoriesRequest(), metadata=metadata, timeout=10)


CALLS: dict[str, Call] = {"agents": _agents, "tasks": _tasks, "mesh": _mesh, "chat": _chat, "memory": _memory}
CARRIED = frozenset({"ListAgents", "ListDeadTasks", "Register", "Deregister", "ListModels", "ListMemories"})
ADMIN = Identity("identity-test-admin", frozenset({"admin", "user"}))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    # Empty key settings: the launcher makes and uses the key pair of the stack's own data folder.
    with run_stack(tmp_path_factory.mktemp("identity"), stack_servers, SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE="",
                   SUTAZAI_IDENTITY_PRIVATE_KEY_FILE="") as running:
        yield running


@pytest.fixture(scope="module")
def platform_key(stack: RunningStack) -> Ed25519PrivateKey:
    private = stack.home.resolve() / "identity" / PRIVATE_FILE
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert (stack.home.resolve() / "identity" / PUBLIC_FILE).exists()
    return load_private_key(private)


def _tampered(token: str) -> str:
    """The token with ``roles`` turned to admin, its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin", "user"]
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join((header, body, signature))


def _forgeries(key: Ed25519PrivateKey) -> dict[str, Metadata]:
    minter = ProofMinter(key, "gateway")
    bare: Metadata = ((USER_ID_KEY, ADMIN.user_id), (ROLES_KEY, "admin,user"))
    expired = ProofMinter(key, "gateway", clock=lambda: time.time() - 3600).mint(ADMIN.user_id, ADMIN.roles)
    stranger = ProofMinter(Ed25519PrivateKey.generate(), "gateway").mint(ADMIN.user_id, ADMIN.roles)
    plain_user = minter.mint("identity-test-user", ["user"])
    return {
        "bare metadata": bare,
        "bare metadata, garbage proof": (*bare, (IDENTITY_KEY, "not-a-token")),
        "bare metadata beside a valid proof": (*bare, *minter.metadata(ADMIN)),
        "expired proof": ((IDENTITY_KEY, expired),),
        "proof signed by another key": ((IDENTITY_KEY, stranger),),
        "user's proof with its roles changed to admin": ((IDENTITY_KEY, _tampered(plain_user)),),
        "empty proof": ((IDENTITY_KEY, ""),),
    }


@pytest.mark.parametrize("service", list(CALLS))
async def test_forged_identity_is_refused_on_every_port_and_a_signed_one_works(
        stack: RunningStack, platform_key: Ed25519PrivateKey, service: str) -> None:
    port = int(stack.state["services"][service]["port"])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        for what, metadata in _forgeries(platform_key).items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await CALLS[service](lambda cls: cls(channel), metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (service, what, caught.value.details())
        # no error: the admin signed with the platform's key is let in
        await CALLS[service](lambda cls: cls(channel), ProofMinter(platform_key, "gateway").metadata(ADMIN))
    finally:
        await channel.close()


@pytest.mark.parametrize("service", list(CALLS))
async def test_forged_identity_is_refused_in_calls_carried_on_a_stream_too(
        stack: RunningStack, platform_key: Ed25519PrivateKey, service: str) -> None:
    """The same calls as messages on the service's Multiplex stream (``sutazai_runtime.multiplex``, how the
    gateway and memory send their hot calls): each message's identity is checked as a unary call's is."""
    port = int(stack.state["services"][service]["port"])
    upstream = Upstream(service, targets=[f"127.0.0.1:{port}"], policy=UpstreamPolicy(multiplexed=CARRIED))
    try:
        for what, metadata in _forgeries(platform_key).items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await CALLS[service](upstream.stub, metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, (service, what, caught.value.details())
        await CALLS[service](upstream.stub, ProofMinter(platform_key, "gateway").metadata(ADMIN))
        mux = upstream.endpoints[0].handle.mux
        assert mux is not None and mux.served  # they went on the stream, not as unary calls
    finally:
        await upstream.close()


def test_the_gateway_signs_with_the_platform_key(stack: RunningStack) -> None:
    agents = httpx.get(stack.url + "/api/v1/agents", headers=stack.admin_headers, timeout=30)
    assert agents.status_code == 200 and agents.json()
    created = httpx.post(stack.url + "/api/v1/tasks", headers=stack.admin_headers, timeout=30,
                         json={"task_type": "echo", "payload": {"n": 1}})
    assert created.status_code == 202
    got = httpx.get(stack.url + f"/api/v1/tasks/{created.json()['task_id']}", headers=stack.admin_headers,
                    timeout=30)
    assert got.status_code == 200
