"""The MCP hub against real MCP servers (``tests/system/mcp_servers/counter.py``, official SDK) over stdio and
streamable HTTP: tools listed, calls bounded in time and output, a dead stdio child restarted, config errors."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.identity import IdentityInterceptor, IdentitySettings, testing
from sutazai_tasks.mcp_client import McpConfig, McpHub, McpUnavailableError, ServerConfig, UnknownToolError, load_config
from sutazai_tasks.mcp_service import McpServicer
from sutazai_tasks.model import WORKER_ISSUER

SERVER = Path(__file__).resolve().parents[3] / "tests" / "system" / "mcp_servers" / "counter.py"


def _children_running(script: Path) -> list[int]:
    """Our own child processes running ``script`` (from /proc: the hub does not expose its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0)
        if ppid == os.getpid() and str(script) in cmdline:
            found.append(int(entry.name))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_stdio_calls_are_bounded_and_a_dead_child_is_restarted(tmp_path: Path) -> None:
    count = tmp_path / "count.txt"
    hub = McpHub(McpConfig(servers={"c": ServerConfig(command=sys.executable, args=(str(SERVER), str(count)),
                                                        timeout_s=3, max_output_chars=100)}))
    hub.start()
    try:
        await hub.wait_ready(30)
        _, _, healthy, error, tools, _ = hub.servers()[0]
        assert healthy and not error and {t.name for t in tools} >= {"count", "slow", "big"}
        assert (await hub.call("c", "count", {"label": "a"})).content == "counted 1"
        slow = await hub.call("c", "slow", {"seconds": 10}, timeout_s=0.5)
        assert slow.is_error and "did not answer within 0.5 s" in slow.content
        big = await hub.call("c", "big", {"size": 5000})
        assert big.truncated and len(big.content) == 100
        with pytest.raises(UnknownToolError):
            await hub.call("c", "nope", {})
        with pytest.raises(UnknownToolError):
            await hub.call("nobody", "count", {})
        for pid in _children_running(SERVER):
            os.kill(pid, signal.SIGKILL)
        assert await _wait(lambda: hub.servers()[0][5] >= 1 and hub.servers()[0][2], 30)  # restarted, healthy
        assert (await hub.call("c", "count", {"label": "b"})).content == "counted 2"
        assert count.read_text().splitlines() == ["a", "b"]  # each call ran once
    finally:
        await hub.close()


async def test_streamable_http_server_with_headers_from_the_environment(tmp_path: Path) -> None:
    port = _free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, str(SERVER), str(tmp_path / "n.txt"), str(port),
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "mcp.yaml"
    config.write_text(f"servers:\n  h:\n    url: http://127.0.0.1:{port}/mcp\n"
                      "    headers: {Authorization: 'Bearer ${H_TOKEN}'}\n    shared: true\n")
    hub = McpHub(load_config(config, {"H_TOKEN": "secret"}))
    try:
        assert load_config(config, {"H_TOKEN": "secret"}).servers["h"].headers == {"Authorization": "Bearer secret"}
        hub.start()
        assert await _wait(lambda: hub.servers()[0][2], 60), hub.servers()
        assert (await hub.call("h", "count", {"label": "x"})).content == "counted 1"
    finally:
        await hub.close()
        server.kill()
        await server.wait()


async def test_a_server_that_cannot_start_is_reported_not_fatal(tmp_path: Path) -> None:
    hub = McpHub(McpConfig(servers={"gone": ServerConfig(command=str(tmp_path / "no-such-binary"))}))
    hub.start()
    try:
        await hub.wait_ready(10)
        assert not hub.servers()[0][2] and hub.servers()[0][3]
        with pytest.raises(McpUnavailableError):
            await hub.call("gone", "x", {})
    finally:
        await hub.close()


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  s:\n    command: x\n    url: http://y\n")
    with pytest.raises(ValueError, match="either 'command'"):
        load_config(bad, {})
    missing = tmp_path / "missing.yaml"
    missing.write_text("servers:\n  s:\n    command: x\n    env: {T: '${NOT_SET}'}\n")
    with pytest.raises(ValueError, match="NOT_SET"):
        load_config(missing, {})
    assert load_config(None, {}).servers == {}


async def test_only_a_worker_signed_proof_calls_tools_of_a_server_that_is_not_shared(tmp_path: Path) -> None:
    """The worker's privilege is its proof's signed issuer; a header claiming to be a worker is ignored."""
    hub = McpHub(McpConfig(servers={"c": ServerConfig(command=sys.executable,
                                                      args=(str(SERVER), str(tmp_path / "count.txt")))}))
    hub.start()
    server = grpc.aio.server(interceptors=[IdentityInterceptor(IdentitySettings().verifier())])
    tasks_pb2_grpc.add_McpServiceServicer_to_server(McpServicer(hub), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await hub.wait_ready(30)
        stub = tasks_pb2_grpc.McpServiceStub(channel)
        request = tasks_pb2.CallMcpToolRequest(server="c", tool="count", arguments_json='{"label": "x"}')
        for metadata in (testing.metadata("u-1"), (*testing.metadata("u-1"), ("sutazai-caller", "worker"))):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CallTool(request, metadata=metadata, timeout=10)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        worker = await stub.CallTool(request, metadata=testing.metadata("u-1", issuer=WORKER_ISSUER), timeout=10)
        assert worker.content == "counted 1"
        admin = await stub.CallTool(request, metadata=testing.metadata("a-1", admin=True), timeout=10)
        assert admin.content == "counted 2"
    finally:
        await channel.close()
        await server.stop(None)
        await hub.close()
