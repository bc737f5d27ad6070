"""Documents over REST: translation to the memory service's document RPCs only. Ingestion (extraction,
chunking, embedding) runs in the memory service after the upload is answered: ``status`` goes from
``processing`` to ``ready`` (or ``failed`` with ``error``), ``progress`` from 0 to 1."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import File, Form, HTTPException, Path, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sutazai.common.v1 import common_pb2
from sutazai.memory.v1 import memory_pb2
from sutazai_runtime.identity import Identity
from sutazai_runtime.timestamps import iso_of

from sutazai_gateway.api.cached import cached_json, invalidate
from sutazai_gateway.api.deps import CurrentUser, StateDep
from sutazai_gateway.api.routes.memory_common import COMMON, MEMORY_TIMEOUT_S, stub
from sutazai_gateway.api.routing import PrefixedRouter
from sutazai_gateway.grpc_errors import upstream_errors
from sutazai_gateway.problems import problem_responses

router = PrefixedRouter(prefix="/api/v1/documents", tags=["documents"])

DocumentId = Annotated[str, Path(min_length=1, max_length=64)]
UPLOAD_TIMEOUT_S = 60.0


class DocumentOut(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    tags: list[str]
    description: str
    status: str
    progress: float
    chunks: int = Field(description="chunks embedded and indexed so far")
    chunks_total: int = Field(description="chunks to embed (0 until the text is split)")
    error: str | None
    sha256: str
    created_at: datetime | None
    updated_at: datetime | None


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int
    limit: int
    offset: int


class NewDocument(BaseModel):
    """A document in JSON: ``content`` as text, or ``content_base64`` for a PDF."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content: str | None = None
    content_base64: str | None = None
    content_type: str = Field("", max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=32)
    description: str = Field("", max_length=4000)

    @model_validator(mode="after")
    def _one(self) -> NewDocument:
        if (self.content is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of content or content_base64")
        return self

    def data(self) -> bytes:
        if self.content is not None:
            return self.content.encode()
        try:
            return base64.b64decode(self.content_base64 or "", validate=True)
        except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
            raise HTTPException(400, "content_base64: not valid base64") from None


class DocSearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=32_000)
    limit: int = Field(20, ge=1, le=100)
    tags: list[str] = Field(default_factory=list, max_length=32)


class DocHit(BaseModel):
    document_id: str
    filename: str
    tags: list[str]
    chunk: str
    chunk_index: int
    score: float


class DocSearchOut(BaseModel):
    query: str
    results: list[DocHit]
    total: int


class StatsOut(BaseModel):
    total_documents: int
    total_size: int
    total_chunks: int
    by_status: dict[str, int]
    by_content_type: dict[str, int]


# Metadata reads come from the API cache, per user (each sees only their own documents), and only once
# ingestion is over: a document still processing changes without a write through the gateway.
SETTLED = frozenset({"ready", "failed"})


def _settled(document: dict[str, Any]) -> bool:
    return document["status"] in SETTLED


def _tags(user: Identity) -> tuple[str, ...]:
    return ("documents", f"documents:{user.user_id}")


def document_dict(d: memory_pb2.Document) -> dict[str, Any]:
    return {"id": d.id, "filename": d.filename, "content_type": d.content_type, "size": d.size, "tags": list(d.tags),
            "description": d.description, "status": d.status, "progress": round(d.progress, 4), "chunks": d.chunks,
            "chunks_total": d.chunks_total,
            "error": d.error or None, "sha256": d.sha256, "created_at": iso_of(d, "created_at"),
            "updated_at": iso_of(d, "updated_at")}


async def _upload(state: StateDep, user: CurrentUser, response: Response, filename: str, content_type: str,
                  data: bytes, tags: list[str], description: str) -> dict[str, Any]:
    request = memory_pb2.UploadDocumentRequest(filename=filename, content_type=content_type, content=data,
                                               tags=tags, description=description)
    with upstream_errors("memory"):
        document = await stub(state).UploadDocument(request, metadata=user.to_metadata(), timeout=UPLOAD_TIMEOUT_S)
    response.headers["Location"] = f"/api/v1/documents/{document.id}"
    await invalidate(state, f"documents:{user.user_id}")
    return document_dict(document)


@router.post("", response_model=DocumentOut, status_code=202, responses=problem_responses(*COMMON, 400, 413))
async def create_document(body: NewDocument, state: StateDep, user: CurrentUser, response: Response
                          ) -> dict[str, Any]:
    """Accepted for ingestion; poll ``GET /api/v1/documents/{id}`` until ``status`` is ``ready``."""
    return await _upload(state, user, response, body.filename, body.content_type, body.data(), body.tags,
                         body.description)


@router.post("/upload", response_model=DocumentOut, status_code=202, responses=problem_responses(*COMMON, 400, 413))
async def upload_document(
    state: StateDep, user: CurrentUser, response: Response,
    file: Annotated[UploadFile, File(description="text, Markdown or PDF (the type is sniffed from the bytes)")],
    tags: Annotated[str, Form(max_length=2000, description="comma-separated")] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
) -> dict[str, Any]:
    """The original's multipart upload: ``file``, ``tags``, ``description``."""
    data = await file.read()
    return await _upload(state, user, response, file.filename or "document", file.content_type or "", data,
                         [t.strip() for t in tags.split(",") if t.strip()], description)


@router.get("", response_model=DocumentList, responses=problem_responses(*COMMON, 400))
async def list_documents(
    state: StateDep, user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 50, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    search: Annotated[str, Query(max_length=200, description="in the file name, description or tags")] = "",
) -> Response:
    async def produce() -> tuple[Any, dict[str, str]]:
        page = common_pb2.PageRequest(limit=limit, offset=offset)
        request = memory_pb2.ListDocumentsRequest(search=search, page=page)
        with upstream_errors("memory"):
            reply = await stub(state).ListDocuments(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
        return {"documents": [document_dict(d) for d in reply.documents], "total": reply.page.total,
                "limit": reply.page.limit, "offset": reply.page.offset}, {}

    return await cached_json(state, f"documents:{user.user_id}:list:{limit}\x00{offset}\x00{search}",
                             _tags(user), produce, keep=lambda c: all(_settled(d) for d in c["documents"]))


@router.get("/stats", response_model=StatsOut, responses=problem_responses(*COMMON))
async def document_stats(state: StateDep, user: CurrentUser) -> Response:
    """The original's summary: how many documents, their size and chunks, by status and type."""
    async def produce() -> tuple[Any, dict[str, str]]:
        with upstream_errors("memory"):
            s = await stub(state).GetDocumentStats(memory_pb2.DocumentStatsRequest(), metadata=user.to_metadata(),
                                                   timeout=MEMORY_TIMEOUT_S)
        return {"total_documents": s.total_documents, "total_size": s.total_size, "total_chunks": s.total_chunks,
                "by_status": dict(s.by_status), "by_content_type": dict(s.by_content_type)}, {}

    return await cached_json(state, f"documents:{user.user_id}:stats", _tags(user), produce,
                             keep=lambda c: set(c["by_status"]) <= SETTLED)


@router.post("/search", response_model=DocSearchOut, responses=problem_responses(*COMMON, 400))
async def search_documents(body: DocSearchBody, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Hybrid search over the chunks of the caller's documents (every given tag must be on the document)."""
    request = memory_pb2.SearchDocumentsRequest(query=body.query, limit=body.limit, tags=body.tags)
    with upstream_errors("memory"):
        reply = await stub(state).SearchDocuments(request, metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    results = [{"document_id": h.document.id, "filename": h.document.filename, "tags": list(h.document.tags),
                "chunk": h.chunk, "chunk_index": h.chunk_index, "score": h.score} for h in reply.hits]
    return {"query": body.query, "results": results, "total": len(results)}


@router.get("/{document_id}", response_model=DocumentOut, responses=problem_responses(*COMMON, 404))
async def get_document(document_id: DocumentId, state: StateDep, user: CurrentUser) -> Response:
    async def produce() -> tuple[Any, dict[str, str]]:
        with upstream_errors("memory"):
            reply = await stub(state).GetDocument(memory_pb2.GetDocumentRequest(id=document_id),
                                                  metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
        return document_dict(reply.document), {}

    return await cached_json(state, f"documents:{user.user_id}:{document_id}", _tags(user), produce, keep=_settled)


@router.get("/{document_id}/download", response_class=Response, responses=problem_responses(*COMMON, 404))
async def download_document(document_id: DocumentId, state: StateDep, user: CurrentUser) -> Response:
    """The document's bytes as uploaded, with its sniffed content type."""
    with upstream_errors("memory"):
        reply = await stub(state).GetDocument(memory_pb2.GetDocumentRequest(id=document_id, include_content=True),
                                              metadata=user.to_metadata(), timeout=UPLOAD_TIMEOUT_S)
    name = reply.document.filename.replace('"', "").replace("\\", "")
    return Response(reply.content, media_type=reply.document.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.delete("/{document_id}", status_code=204, responses=problem_responses(*COMMON, 404))
async def delete_document(document_id: DocumentId, state: StateDep, user: CurrentUser) -> Response:
    """Removes the document and every chunk of it from the index (an ingestion under way is stopped)."""
    with upstream_errors("memory"):
        await stub(state).DeleteDocument(memory_pb2.DeleteDocumentRequest(id=document_id),
                                         metadata=user.to_metadata(), timeout=MEMORY_TIMEOUT_S)
    await invalidate(state, f"documents:{user.user_id}")
    return Response(status_code=204)
