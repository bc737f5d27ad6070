"""Which model backends exist: read from one file (YAML or JSON), or from ``SUTAZAI_CHAT_BACKENDS`` (JSON),
else the local defaults. API keys may come from ``SUTAZAI_CHAT_BACKEND_<NAME>_API_KEY`` so they stay out
of files. No I/O beyond reading the file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, TypeAdapter, field_validator

from sutazai_chat.config import Settings


class BackendSpec(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    kind: Literal["openai", "ollama"]
    url: str = Field(pattern=r"^https?://")
    api_key: SecretStr | None = None
    # Served models. Empty: whatever the backend lists (/v1/models, /api/tags), refreshed periodically.
    models: tuple[str, ...] = ()
    weight: float = Field(1.0, gt=0)
    concurrency: int = Field(4, ge=1)

    @field_validator("url")
    @classmethod
    def _strip(cls, url: str) -> str:
        return url.rstrip("/")


_LIST = TypeAdapter(list[BackendSpec])


def _env_key(name: str) -> str:
    return "SUTAZAI_CHAT_BACKEND_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_API_KEY"


def load_backends(settings: Settings, environ: Mapping[str, str] | None = None) -> list[BackendSpec]:
    environ = os.environ if environ is None else environ
    if settings.backends_file is not None:
        raw = yaml.safe_load(Path(settings.backends_file).read_text())
        items = raw.get("backends", raw) if isinstance(raw, dict) else raw
    elif settings.backends:
        items = json.loads(settings.backends)
    else:
        items = [{"name": "local", "kind": settings.model_kind, "url": settings.model_url}]
        if settings.embeddings_url:
            items.append({"name": "local-embeddings", "kind": settings.embeddings_kind, "url": settings.embeddings_url})
    specs = _LIST.validate_python(items)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"backend names must be unique: {names}")
    if not specs:
        raise ValueError("no model backend is configured")
    return [
        s.model_copy(update={"api_key": SecretStr(environ[_env_key(s.name)])}) if _env_key(s.name) in environ else s
        for s in specs
    ]
