"""The chat service, the only way memory reaches a model: embeddings (``Embed``) and, for
``infer: true`` / ``extract_graph: true``, one chat completion per item (``Chat``). Memory never loads a model.

The service calls chat through a balanced, protected ``Upstream`` (instances from the registry, breaker,
deadline; ``__main__``); tests may hand a plain channel."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.identity import Identity
from sutazai_runtime.resilience.upstream import Upstream, stub_of

from sutazai_memory.errors import InvalidInput, UpstreamError


@dataclass(frozen=True, slots=True)
class Embedded:
    model: str
    dimensions: int
    vectors: list[list[float]]


class ChatClient:
    def __init__(self, chat: grpc.aio.Channel | Upstream, *, embed_model: str = "", infer_model: str = "",
                 batch: int = 64, embed_timeout_s: float = 60.0, infer_timeout_s: float = 120.0) -> None:
        self._stub = stub_of(chat, chat_pb2_grpc.ChatServiceStub)
        self._embed_model = embed_model
        self._infer_model = infer_model
        self._batch = batch
        self._embed_timeout_s = embed_timeout_s
        self._infer_timeout_s = infer_timeout_s

    async def embed(self, texts: list[str], identity: Identity) -> Embedded:
        """One vector per text, in order, asked in batches of ``batch``."""
        vectors: list[list[float]] = []
        model, dims = "", 0
        for start in range(0, len(texts), self._batch):
            request = chat_pb2.EmbedRequest(inputs=texts[start:start + self._batch], model=self._embed_model)
            try:
                reply = await self._stub.Embed(request, metadata=identity.to_metadata(),
                                               timeout=self._embed_timeout_s)
            except grpc.aio.AioRpcError as exc:
                raise _upstream("embeddings", exc) from exc
            model, dims = reply.model, reply.dimensions or len(reply.embeddings[0].values)
            vectors.extend(list(e.values) for e in reply.embeddings)
        if len(vectors) != len(texts):
            raise UpstreamError(f"chat answered {len(vectors)} embeddings for {len(texts)} inputs")
        return Embedded(model, dims, vectors)

    async def complete(self, system: str, prompt: str, identity: Identity, *, max_tokens: int = 512,
                       schema_json: str = "") -> str:
        """One completion; with ``schema_json`` the reply is constrained to that JSON schema."""
        request = chat_pb2.ChatRequest(
            messages=[chat_pb2.Message(role="user", content=prompt)], system=system, model=self._infer_model,
            use_cache=True, temperature=0.0, max_tokens=max_tokens,
            response_format=chat_pb2.ResponseFormat(type="json_schema", schema_json=schema_json, name="graph",
                                                    strict=True) if schema_json else None,
        )
        try:
            reply = await self._stub.Chat(request, metadata=identity.to_metadata(), timeout=self._infer_timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _upstream("chat", exc) from exc
        return str(reply.response)


def _upstream(what: str, exc: grpc.aio.AioRpcError) -> Exception:
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidInput(f"{what}: {exc.details()}")
    return UpstreamError(f"{what} failed: {exc.code().name}: {exc.details()}")
