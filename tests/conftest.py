"""Fixtures of the system and fault tests."""

from __future__ import annotations

import pytest

from tests.system.stack_runner import Servers


@pytest.fixture(scope="session")
def stack_servers(postgres_url: str, redis_url: str, nats_url: str) -> Servers:
    """The session's servers, for ``run_stack``: each stack gets its own database on them."""
    return Servers(postgres_url, redis_url, nats_url)
