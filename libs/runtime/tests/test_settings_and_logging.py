import json
import logging

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict
from sutazai_runtime.logging import configure_logging, redact_url
from sutazai_runtime.settings import ServiceSettings, database_url_field


class _Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUTAZAI_DEMO_")
    grpc_port: int = Field(50999, ge=0, le=65535)
    metrics_port: int = Field(0, ge=0, le=65535)
    database_url: str = database_url_field()


def test_prefixed_and_shared_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTAZAI_DEMO_GRPC_PORT", "50100")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/x")
    settings = _Settings()
    assert settings.grpc_port == 50100
    assert settings.database_url == "postgresql://u@db:5432/x"


def test_bad_values_fail_at_start_up_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTAZAI_DEMO_GRPC_PORT", "70000")
    with pytest.raises(ValidationError, match="grpc_port"):
        _Settings()
    monkeypatch.setenv("SUTAZAI_DEMO_GRPC_PORT", "1")
    monkeypatch.setenv("SUTAZAI_DEMO_SHUTDOWN_GRACE_S", "10")  # would break "stop within 5 s"
    with pytest.raises(ValidationError, match="shutdown_grace_s"):
        _Settings()


def test_redact_url_hides_the_password_only() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "s3cret" not in redact_url("redis://:s3cret@cache:6379")


def test_logs_are_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "demo")
    logging.getLogger("demo.module").info("hello %s", "world", extra={"task_id": "t-1"})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["message"] == "hello world"
    assert record["service"] == "demo"
    assert record["level"] == "INFO"
    assert record["task_id"] == "t-1"


def test_a_line_per_request_of_http_clients_is_left_out_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    """httpx (the official model clients') logs every request at INFO; chat's backend probe alone made a line a
    second per backend. Its warnings still come through."""
    configure_logging("INFO", "demo")
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:1/v1/models "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("a warning")
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["message"] for r in lines if r["logger"] == "httpx"] == ["a warning"]
