"""Routes' side of the API cache (``api_cache.py``): answer from the cache, or produce, answer and store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.responses import Response

from sutazai_gateway.api.deps import GatewayState
from sutazai_gateway.responses import json_response

Produce = Callable[[], Awaitable[tuple[Any, dict[str, str]]]]


def _always(_: Any) -> bool:
    return True


async def cached_json(state: GatewayState, name: str, tags: Sequence[str], produce: Produce, *,
                      keep: Callable[[Any], bool] = _always) -> Response:
    """The JSON answer named ``name`` (everything that shapes it, the caller too where the data is theirs),
    from the cache (``X-Cache: HIT``) or from ``produce`` (``MISS``; stored when ``keep`` says the content is
    settled). ``produce`` returns the content and the headers to keep with it."""
    cache = state.api_cache
    if cache is None:
        content, headers = await produce()
        return json_response(content, headers=headers)
    lookup = await cache.get(name, tags)
    if lookup.hit:
        return Response(lookup.body, media_type="application/json",
                        headers={**(lookup.headers or {}), "X-Cache": "HIT"})
    content, headers = await produce()
    response = json_response(content, headers={**headers, "X-Cache": "MISS"})
    if keep(content):
        await cache.put(lookup, response.body, headers)
    return response


async def invalidate(state: GatewayState, *tags: str) -> None:
    if state.api_cache is not None:
        await state.api_cache.invalidate_quietly(tags)
