"""The edge keeps answering when a gateway dies: deploy/envoy/envoy.yaml (its routes, retries, health checks
and outlier detection unchanged; only the cluster pointed at two local gateways instead of compose's DNS name)
runs in front of two gateway processes of a real stack. Requests go through Envoy to both; one gateway is
SIGKILLed; every request after that still succeeds, and Envoy's health check takes the dead one out."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from sutazai_stack.ports import free_port

from deploy.tests import manifests
from tests.system.stack_runner import RunningStack, run_stack, wait_until

pytestmark = pytest.mark.system


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def edge_config(gateway_ports: list[int], listen_port: int, admin_port: int) -> dict:
    """The compose edge, with the gateway cluster as two static local hosts and local ports."""
    config = yaml.safe_load(manifests.ENVOY_CONFIGS[0].read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen_port)
    (cluster,) = config["static_resources"]["clusters"]
    for dns_only in ("dns_lookup_family", "dns_refresh_rate", "respect_dns_ttl"):
        cluster.pop(dns_only)
    cluster["type"] = "STATIC"
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
        for port in gateway_ports
    ]
    return config


def host_stats(admin: str) -> dict[str, dict[str, str]]:
    """Per upstream host of the gateway cluster: Envoy's counters and health flags (admin /clusters)."""
    stats: dict[str, dict[str, str]] = {}
    for line in httpx.get(admin + "/clusters", timeout=2).text.splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[0] == "gateway" and parts[1].startswith("127.0.0.1:"):  # not cluster-wide
            stats.setdefault(parts[1], {})[parts[2]] = parts[3]
    return stats


def healthy_hosts(admin: str) -> set[str]:
    return {host for host, s in host_stats(admin).items() if s.get("health_flags") == "healthy"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("edge-stack")) as running:
        yield running


def test_envoy_keeps_answering_when_one_of_two_gateways_is_killed(stack: RunningStack, tmp_path: Path) -> None:
    first_port = int(stack.state["services"]["gateway"]["port"])
    # A second gateway against the same upstreams: the first one's environment, other ports.
    env = psutil.Process(stack.pid("gateway")).environ()
    second_port = free_port()
    env.update(SUTAZAI_GATEWAY_PORT=str(second_port), SUTAZAI_GATEWAY_METRICS_PORT="0")
    listen_port, admin_port = free_port(), free_port()
    config_path = tmp_path / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(edge_config([first_port, second_port], listen_port, admin_port)))
    assert manifests.validate_envoy(config_path) == []
    edge, admin = f"http://127.0.0.1:{listen_port}", f"http://127.0.0.1:{admin_port}"
    headers = stack.admin_headers

    with process([sys.executable, "-m", "sutazai_gateway"], tmp_path / "gateway-2.log", env) as second, \
         process([str(manifests.envoy_binary()), "-c", str(config_path), "--disable-hot-restart", "-l", "warning"],
                 tmp_path / "envoy.log"):
        assert wait_until(lambda: answers(f"http://127.0.0.1:{second_port}/health-emergency"), 60), \
            (tmp_path / "gateway-2.log").read_text()[-3000:]
        assert wait_until(lambda: answers(admin + "/ready") and len(healthy_hosts(admin)) == 2, 30), \
            (tmp_path / "envoy.log").read_text()[-3000:]

        # Both gateways serve through the edge (authenticated reads, and writes).
        for i in range(40):
            reply = httpx.get(edge + "/api/v1/auth/me", headers=headers, timeout=10)
            assert reply.status_code == 200, reply.text
            assert reply.json()["username"] == "admin"
            if i % 10 == 0:
                created = httpx.post(edge + "/api/v1/tasks", headers=headers, timeout=10,
                                     json={"task_type": "echo", "payload": {"i": i}})
                assert created.status_code == 202, created.text
        served = {host: int(s.get("rq_success", "0")) for host, s in host_stats(admin).items()}
        assert len(served) == 2 and all(n > 0 for n in served.values()), served

        second.kill()
        second.wait(10)
        failures = []
        deadline = time.monotonic() + 15
        count = 0
        # Straight after the kill, and until the health check has taken the dead gateway out and beyond.
        while time.monotonic() < deadline or count < 60:
            count += 1
            try:
                if count % 5 == 0:
                    reply = httpx.post(edge + "/api/v1/tasks", headers=headers, timeout=10,
                                       json={"task_type": "echo", "payload": {"after_kill": count}})
                    ok = reply.status_code == 202
                else:
                    reply = httpx.get(edge + "/api/v1/auth/me", headers=headers, timeout=10)
                    ok = reply.status_code == 200
                if not ok:
                    failures.append((count, reply.status_code, reply.text[:200]))
            except httpx.HTTPError as exc:
                failures.append((count, type(exc).__name__, str(exc)))
            if count > 60 and healthy_hosts(admin) == {f"127.0.0.1:{first_port}"}:
                break
        assert failures == [], failures
        assert healthy_hosts(admin) == {f"127.0.0.1:{first_port}"}, host_stats(admin)
