"""gRPC servicer of the memory context: translates messages and maps domain errors to status codes.
Every call needs the caller's identity in the metadata; every query is scoped by its user id."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from sutazai.common.v1 import common_pb2
from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai_runtime.identity import require_identity

from sutazai_memory import convert
from sutazai_memory.documents import Documents
from sutazai_memory.errors import Conflict, InvalidInput, MemoryServiceError, NotFound, Unsupported, UpstreamError
from sutazai_memory.graph.base import (
    MAX_DEPTH,
    MAX_PATH,
    GraphStore,
    check_depth,
    check_entity,
    check_relation,
)
from sutazai_memory.memories import Memories
from sutazai_memory.model import NewMemory

SERVICE = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"]
log = logging.getLogger(__name__)
T = TypeVar("T")

_CODES: dict[type[MemoryServiceError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    Unsupported: grpc.StatusCode.FAILED_PRECONDITION,
    UpstreamError: grpc.StatusCode.UNAVAILABLE,
}


async def _guarded(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except MemoryServiceError as exc:
        code = next((c for t, c in _CODES.items() if isinstance(exc, t)), grpc.StatusCode.INTERNAL)
        await context.abort(code, str(exc))
        raise  # abort raises; unreachable


def _page(page: common_pb2.PageRequest, default: int = 50) -> tuple[int, int]:
    limit = page.limit or default
    if not 1 <= limit <= 100 or page.offset < 0:
        raise InvalidInput("limit: between 1 and 100; offset: at least 0")
    return limit, page.offset


@dataclass
class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    memories: Memories
    documents: Documents
    graph: GraphStore

    # -- memories ----------------------------------------------------------------------------------------
    async def AddMemories(self, request: memory_pb2.AddMemoriesRequest, context: grpc.aio.ServicerContext
                          ) -> memory_pb2.AddMemoriesResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.AddMemoriesResponse:
            items = [NewMemory(i.content, convert.from_json(i.metadata_json), convert.scope(i.scope),
                               i.collection.strip(), i.document_id.strip()) for i in request.items]
            outcomes, calls = await self.memories.add(identity, items, infer=request.infer,
                                                      extract_graph=request.extract_graph)
            return memory_pb2.AddMemoriesResponse(model_calls=calls, backend=self.memories.index.backend, results=[
                memory_pb2.AddResult(item=o.item, event=o.event, reason=o.reason,
                                     memory=convert.memory(o.memory) if o.memory else None,
                                     graph=memory_pb2.GraphExtraction(entities=o.graph.entities,
                                                                      relations=o.graph.relations,
                                                                      skipped=o.graph.skipped) if o.graph else None)
                for o in outcomes])
        return await _guarded(context, call)

    async def SearchMemories(self, request: memory_pb2.SearchMemoriesRequest, context: grpc.aio.ServicerContext
                             ) -> memory_pb2.SearchMemoriesResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.SearchMemoriesResponse:
            found = await self.memories.search(
                identity, request.query, limit=request.limit or 10,
                threshold=request.threshold if request.HasField("threshold") else None,
                scope=convert.scope(request.scope),
                metadata=convert.from_json(request.metadata_json, "metadata filter"),
                collection=request.collection.strip(), mode=request.mode or "hybrid")
            return memory_pb2.SearchMemoriesResponse(results=[
                memory_pb2.ScoredMemory(memory=convert.memory(m), score=s) for m, s in found])
        return await _guarded(context, call)

    async def ListMemories(self, request: memory_pb2.ListMemoriesRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.ListMemoriesResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.ListMemoriesResponse:
            limit, offset = _page(request.page)
            records, total = await self.memories.list(identity, convert.scope(request.scope),
                                                      request.collection.strip() or None, limit, offset)
            return memory_pb2.ListMemoriesResponse(
                memories=[convert.memory(r) for r in records],
                page=common_pb2.PageInfo(total=total, limit=limit, offset=offset))
        return await _guarded(context, call)

    async def GetMemory(self, request: memory_pb2.GetMemoryRequest, context: grpc.aio.ServicerContext
                        ) -> memory_pb2.Memory:
        identity = await require_identity(context)
        return await _guarded(context, lambda: self._get(identity, request.id))

    async def _get(self, identity, memory_id):  # type: ignore[no-untyped-def]
        return convert.memory(await self.memories.get(identity, memory_id))

    async def UpdateMemory(self, request: memory_pb2.UpdateMemoryRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.Memory:
        identity = await require_identity(context)

        async def call() -> memory_pb2.Memory:
            record = await self.memories.update(
                identity, request.id, request.content if request.HasField("content") else None,
                convert.from_json(request.metadata_json) if request.HasField("metadata_json") else None)
            return convert.memory(record)
        return await _guarded(context, call)

    async def DeleteMemory(self, request: memory_pb2.DeleteMemoryRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.DeleteMemoryResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.DeleteMemoryResponse:
            await self.memories.delete(identity, request.id)
            return memory_pb2.DeleteMemoryResponse(deleted=True)
        return await _guarded(context, call)

    async def MemoryHistory(self, request: memory_pb2.MemoryHistoryRequest, context: grpc.aio.ServicerContext
                            ) -> memory_pb2.MemoryHistoryResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.MemoryHistoryResponse:
            changes = await self.memories.history(identity, request.id)
            return memory_pb2.MemoryHistoryResponse(changes=[convert.change(c) for c in changes])
        return await _guarded(context, call)

    async def ListCollections(self, request: memory_pb2.ListCollectionsRequest,
                              context: grpc.aio.ServicerContext) -> memory_pb2.ListCollectionsResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.ListCollectionsResponse:
            rows = await self.memories.collections(identity)
            return memory_pb2.ListCollectionsResponse(collections=[
                memory_pb2.Collection(name=name, count=count, dimensions=dims, model=vc)
                for name, count, dims, vc in rows])
        return await _guarded(context, call)

    async def GetStats(self, request: memory_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
                       ) -> memory_pb2.GetStatsResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.GetStatsResponse:
            collections = await self.memories.collections(identity)
            docs = await self.documents.stats(identity)
            entities, relations = await self.graph.counts(identity.user_id)
            dims = max((d for _, _, d, _ in collections), default=0)
            model = next((vc for *_, vc in collections), "")
            return memory_pb2.GetStatsResponse(
                memories=sum(c for _, c, _, _ in collections), documents=docs["total_documents"],
                chunks=docs["total_chunks"], graph_entities=entities, graph_relations=relations,
                vector_backend=self.memories.index.backend, graph_backend=self.graph.name,
                embedding_model=model, dimensions=dims, collections=len(collections))
        return await _guarded(context, call)

    # -- documents ---------------------------------------------------------------------------------------
    async def UploadDocument(self, request: memory_pb2.UploadDocumentRequest, context: grpc.aio.ServicerContext
                             ) -> memory_pb2.Document:
        identity = await require_identity(context)

        async def call() -> memory_pb2.Document:
            record = await self.documents.upload(identity, request.filename, request.content_type, request.content,
                                                 list(request.tags), request.description)
            return convert.document(record)
        return await _guarded(context, call)

    async def ListDocuments(self, request: memory_pb2.ListDocumentsRequest, context: grpc.aio.ServicerContext
                            ) -> memory_pb2.ListDocumentsResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.ListDocumentsResponse:
            limit, offset = _page(request.page)
            records, total = await self.documents.list(identity, request.search, limit, offset)
            return memory_pb2.ListDocumentsResponse(
                documents=[convert.document(r) for r in records],
                page=common_pb2.PageInfo(total=total, limit=limit, offset=offset))
        return await _guarded(context, call)

    async def GetDocument(self, request: memory_pb2.GetDocumentRequest, context: grpc.aio.ServicerContext
                          ) -> memory_pb2.GetDocumentResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.GetDocumentResponse:
            record = await self.documents.get(identity, request.id)
            content = await self.documents.content(identity, request.id) if request.include_content else b""
            return memory_pb2.GetDocumentResponse(document=convert.document(record), content=content)
        return await _guarded(context, call)

    async def DeleteDocument(self, request: memory_pb2.DeleteDocumentRequest, context: grpc.aio.ServicerContext
                             ) -> memory_pb2.DeleteDocumentResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.DeleteDocumentResponse:
            await self.documents.delete(identity, request.id)
            return memory_pb2.DeleteDocumentResponse(deleted=True)
        return await _guarded(context, call)

    async def SearchDocuments(self, request: memory_pb2.SearchDocumentsRequest,
                              context: grpc.aio.ServicerContext) -> memory_pb2.SearchDocumentsResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.SearchDocumentsResponse:
            hits = await self.documents.search(identity, request.query, request.limit or 20, list(request.tags))
            return memory_pb2.SearchDocumentsResponse(hits=[
                memory_pb2.DocumentHit(document=convert.document(d), chunk=text, chunk_index=index, score=score)
                for d, text, index, score in hits])
        return await _guarded(context, call)

    async def GetDocumentStats(self, request: memory_pb2.DocumentStatsRequest,
                               context: grpc.aio.ServicerContext) -> memory_pb2.DocumentStats:
        identity = await require_identity(context)

        async def call() -> memory_pb2.DocumentStats:
            return memory_pb2.DocumentStats(**await self.documents.stats(identity))
        return await _guarded(context, call)

    # -- graph -------------------------------------------------------------------------------------------
    async def UpsertEntity(self, request: memory_pb2.UpsertEntityRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.UpsertEntityResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.UpsertEntityResponse:
            name, type_ = check_entity(request.name, request.type)
            entity, created = await self.graph.upsert_entity(
                identity.user_id, name, type_, convert.from_json(request.properties_json, "properties"),
                convert.scope(request.scope))
            return memory_pb2.UpsertEntityResponse(entity=convert.entity(entity), created=created)
        return await _guarded(context, call)

    async def CreateRelation(self, request: memory_pb2.CreateRelationRequest, context: grpc.aio.ServicerContext
                             ) -> memory_pb2.Relation:
        identity = await require_identity(context)

        async def call() -> memory_pb2.Relation:
            valid_from = convert.from_ts(request, "valid_from")
            valid_to = convert.from_ts(request, "valid_to")
            type_ = check_relation(request.type, valid_from, valid_to)
            relation = await self.graph.create_relation(
                identity.user_id, request.source_id, request.target_id, type_,
                convert.from_json(request.properties_json, "properties"), valid_from, valid_to)
            return convert.relation(relation)
        return await _guarded(context, call)

    async def GetEntity(self, request: memory_pb2.GetEntityRequest, context: grpc.aio.ServicerContext
                        ) -> memory_pb2.Subgraph:
        identity = await require_identity(context)

        async def call() -> memory_pb2.Subgraph:
            sub = await self.graph.neighbourhood(identity.user_id, request.id, check_depth(request.depth, MAX_DEPTH))
            return memory_pb2.Subgraph(entity=convert.entity(sub.entity),
                                       neighbours=[convert.entity(e) for e in sub.neighbours],
                                       relations=[convert.relation(r) for r in sub.relations])
        return await _guarded(context, call)

    async def ListEntities(self, request: memory_pb2.ListEntitiesRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.ListEntitiesResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.ListEntitiesResponse:
            limit, offset = _page(request.page)
            entities, total = await self.graph.list_entities(identity.user_id, request.type.strip(),
                                                             request.name.strip(), limit, offset)
            return memory_pb2.ListEntitiesResponse(entities=[convert.entity(e) for e in entities],
                                                   page=common_pb2.PageInfo(total=total, limit=limit, offset=offset))
        return await _guarded(context, call)

    async def ShortestPath(self, request: memory_pb2.ShortestPathRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.PathResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.PathResponse:
            depth = request.max_depth or 6
            if not 1 <= depth <= MAX_PATH:
                raise InvalidInput(f"max_depth: between 1 and {MAX_PATH}")
            path = await self.graph.shortest_path(identity.user_id, request.from_id, request.to_id, depth)
            return memory_pb2.PathResponse(found=path.found, entities=[convert.entity(e) for e in path.entities],
                                           relations=[convert.relation(r) for r in path.relations])
        return await _guarded(context, call)

    async def DeleteEntity(self, request: memory_pb2.DeleteEntityRequest, context: grpc.aio.ServicerContext
                           ) -> memory_pb2.DeleteGraphResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.DeleteGraphResponse:
            removed = await self.graph.delete_entity(identity.user_id, request.id)
            return memory_pb2.DeleteGraphResponse(deleted=True, relations_removed=removed)
        return await _guarded(context, call)

    async def DeleteRelation(self, request: memory_pb2.DeleteRelationRequest, context: grpc.aio.ServicerContext
                             ) -> memory_pb2.DeleteGraphResponse:
        identity = await require_identity(context)

        async def call() -> memory_pb2.DeleteGraphResponse:
            await self.graph.delete_relation(identity.user_id, request.id)
            return memory_pb2.DeleteGraphResponse(deleted=True)
        return await _guarded(context, call)
