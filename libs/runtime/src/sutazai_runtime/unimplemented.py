"""Servicers whose RPCs answer UNIMPLEMENTED, naming the issue that brings them.

A service subclasses ``placeholder_servicer(...)`` and overrides the methods it implements; the rest
answer ``UNIMPLEMENTED`` with a message a client can act on, instead of the generated code's
``NotImplementedError``.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor


def _handler(method: MethodDescriptor, planned_in: str) -> Any:
    message = f"{method.containing_service.full_name}/{method.name} is not implemented yet ({planned_in})"

    async def unimplemented(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    unimplemented.__name__ = method.name
    return unimplemented


def placeholder_servicer(base: type, descriptor: ServiceDescriptor, planned_in: str) -> type:
    """A subclass of the generated ``base`` servicer whose every RPC answers UNIMPLEMENTED."""
    namespace = {m.name: _handler(m, planned_in) for m in descriptor.methods}
    return type(f"Placeholder{descriptor.name}", (base,), namespace)
