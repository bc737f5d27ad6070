"""The server side: every call's identity proof is verified before its servicer runs.

``IdentityInterceptor`` (installed by ``grpc_server.serve``) reads ``x-sutazai-identity``: a valid proof makes
the verified ``Identity`` the call's caller (a context variable of the call's task); an invalid, expired or
unknown-key proof, or the bare ``x-sutazai-user-id`` / ``x-sutazai-roles`` keys services used to trust, end
the call with ``UNAUTHENTICATED`` before the servicer sees it. A call without any identity goes on: the
servicer decides, with ``require_identity``, whether it needs one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from sutazai_runtime.identity.model import IDENTITY_KEY, LEGACY_KEYS, Identity
from sutazai_runtime.identity.proof import InvalidProofError, ProofVerifier

_CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("sutazai_caller", default=None)


def current_caller() -> Identity | None:
    """The verified identity of the call being served (None: the call carries none)."""
    return _CALLER.get()


async def require_identity(context: grpc.aio.ServicerContext) -> Identity:
    """The caller's verified identity, or abort the call with UNAUTHENTICATED."""
    identity = _CALLER.get()
    if identity is None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the call carries no caller identity")
    assert identity is not None  # abort raises; this narrows the type
    return identity


async def require_admin(context: grpc.aio.ServicerContext) -> Identity:
    identity = await require_identity(context)
    if not identity.is_admin:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this call needs the admin role")
    return identity


def _refusal(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler | None:
    """A handler of the same shape as ``handler`` that ends the call with UNAUTHENTICATED."""
    if handler is None:
        return None  # an unknown method: gRPC answers UNIMPLEMENTED

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def refuse_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    serializers = {"request_deserializer": handler.request_deserializer,
                   "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **serializers)
    return grpc.unary_unary_rpc_method_handler(refuse, **serializers)


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class IdentityRefused(Exception):
    """The metadata carries an identity that must not be accepted (the message says why)."""


def caller_of(verifier: ProofVerifier, metadata: Any) -> Identity | None:
    """The verified identity a call's metadata carries, None when it carries none, or ``IdentityRefused``: an
    invalid, expired or unknown-key proof, more than one proof, or the bare legacy keys. One rule for unary
    calls (``IdentityInterceptor``) and for calls carried on a stream (``sutazai_runtime.multiplex``)."""
    token: str | None = None
    for key, value in metadata or ():
        if key == IDENTITY_KEY:
            if token is not None:
                raise IdentityRefused("more than one identity proof")
            token = value if isinstance(value, str) else ""
        elif key in LEGACY_KEYS:
            raise IdentityRefused(f"bare identity metadata ({key}) is not accepted: send a signed {IDENTITY_KEY}")
    if token is None:
        return None
    try:
        return verifier.verify(token)
    except InvalidProofError as exc:
        raise IdentityRefused(str(exc)) from exc


def set_caller(identity: Identity | None) -> None:
    """Make ``identity`` the caller of the code running in this task (what ``require_identity`` reads)."""
    _CALLER.set(identity)


class IdentityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: ProofVerifier) -> None:
        self.verifier = verifier

    async def intercept_service(self, continuation: Continuation,
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        try:
            identity = caller_of(self.verifier, handler_call_details.invocation_metadata)  # type: ignore[attr-defined]
        except IdentityRefused as exc:
            return _refusal(await continuation(handler_call_details), str(exc))
        _CALLER.set(identity)
        return await continuation(handler_call_details)
