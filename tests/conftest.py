"""Fixtures of the system and fault tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def own_tmp() -> Iterator[Path]:
    """A scratch folder outside pytest's basetemp, for an embedded PostgreSQL's data: each pytest session
    that starts resets /tmp/pytest-of-<user> to mode 0700, locking out PostgreSQL's own user (as root)."""
    path = Path(tempfile.mkdtemp(prefix="sutazai-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
