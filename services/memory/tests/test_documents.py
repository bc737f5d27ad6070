"""Documents: upload, background ingestion, search, download, delete, stats; on real servers."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import grpc
import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject
from sutazai.memory.v1 import memory_pb2 as m
from sutazai_memory.document_events import SUBJECT
from sutazai_runtime.nats import connect_nats

MARKDOWN = """# Runbook: payments service

## Restarting

To restart the payments service run `systemctl restart payments` on host pay-01. Wait for the health
check on port 8443 to answer before sending traffic.

## Escalation

Page the on-call engineer through the incident channel. The escalation code for payments is PAY-ESC-554.

## Backups

Backups of the ledger database run nightly at 02:00 and are kept for 35 days in the cold bucket.
"""


def pdf_bytes(lines: list[str]) -> bytes:
    """A real one-page PDF with text, written with pypdf (a content stream with a Helvetica font)."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
        {NameObject("/F1"): writer._add_object(font)})})
    text = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 720 Td {text} ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def wait_ready(client: Any, document_id: str, timeout_s: float = 120) -> m.Document:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = (await client.GetDocument(m.GetDocumentRequest(id=document_id))).document
        if doc.status != "processing":
            return doc
        assert time.monotonic() < deadline, "ingestion did not finish"
        await asyncio.sleep(0.1)


async def test_ingestion_progress_is_published_per_document_and_in_the_status(memory: Any, user: str,
                                                                              nats_url: str) -> None:
    nc = await connect_nats(nats_url, name="memory-events-test")
    seen: list[dict[str, Any]] = []

    async def collect(msg: Any) -> None:
        seen.append(json.loads(msg.data))

    sub = await nc.subscribe(f"{SUBJECT}.*", cb=collect)
    try:
        c = memory.client(user)
        long_text = "\n\n".join(f"## Part {i}\n\n" + "The quick brown fox jumps over the lazy dog. " * 30
                                 for i in range(8))
        doc = await c.UploadDocument(m.UploadDocumentRequest(filename="long.md", content=long_text.encode()))
        ready = await wait_ready(c, doc.id)
        assert ready.status == "ready" and ready.chunks == ready.chunks_total > 1 and ready.progress == 1
        deadline = time.monotonic() + 10
        while not any(e["document_id"] == doc.id and e["status"] == "ready" for e in seen):
            assert time.monotonic() < deadline, "no ready event"
            await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()
        await nc.close()
    mine = [e for e in seen if e["document_id"] == doc.id]
    assert [e["status"] for e in mine][-1] == "ready" and mine[0]["chunks"] == 0
    assert all(e["chunks_total"] == ready.chunks_total and e["owner_id"] == user for e in mine)
    done = [e["chunks"] for e in mine]
    assert done == sorted(done) and done[-1] == ready.chunks_total  # chunks done / total, never backwards


async def test_markdown_and_pdf_are_ingested_and_searchable(memory: Any, user: str) -> None:
    c = memory.client(user)
    md = await c.UploadDocument(m.UploadDocumentRequest(filename="runbook.md", content=MARKDOWN.encode(),
                                                        tags=["ops", "payments"], description="payments runbook"))
    assert md.status == "processing" and md.content_type == "text/markdown"
    pdf = await c.UploadDocument(m.UploadDocumentRequest(
        filename="policy.pdf", content_type="text/plain",  # the claim is wrong; the bytes say PDF
        content=pdf_bytes(["Travel policy: economy class for flights under six hours.",
                           "Hotel stays are reimbursed up to 180 euros per night."]), tags=["hr"]))
    assert pdf.content_type == "application/pdf"
    md_doc, pdf_doc = await wait_ready(c, md.id), await wait_ready(c, pdf.id)
    assert (md_doc.status, pdf_doc.status) == ("ready", "ready"), (md_doc.error, pdf_doc.error)
    assert md_doc.chunks >= 2 and md_doc.progress == pytest.approx(1.0)
    hits = await c.SearchDocuments(m.SearchDocumentsRequest(query="how much is a hotel night refunded", limit=3))
    assert hits.hits[0].document.id == pdf.id and "180 euros" in hits.hits[0].chunk
    hits = await c.SearchDocuments(m.SearchDocumentsRequest(query="PAY-ESC-554", limit=3))
    assert hits.hits[0].document.id == md.id and "PAY-ESC-554" in hits.hits[0].chunk
    tagged = await c.SearchDocuments(m.SearchDocumentsRequest(query="hotel night", limit=5, tags=["ops"]))
    assert {h.document.id for h in tagged.hits} == {md.id}
    listed = await c.ListDocuments(m.ListDocumentsRequest(search="runbook"))
    assert [d.id for d in listed.documents] == [md.id]
    got = await c.GetDocument(m.GetDocumentRequest(id=pdf.id, include_content=True))
    assert got.content.startswith(b"%PDF")
    stats = await c.GetDocumentStats(m.DocumentStatsRequest())
    assert stats.total_documents == 2 and stats.by_status["ready"] == 2
    assert stats.total_chunks == md_doc.chunks + pdf_doc.chunks

    await c.DeleteDocument(m.DeleteDocumentRequest(id=md.id))
    hits = await c.SearchDocuments(m.SearchDocumentsRequest(query="PAY-ESC-554 escalation", limit=10))
    assert md.id not in {h.document.id for h in hits.hits}
    index = memory.built.index
    name = (await index.collections())[0][0]
    from sutazai_memory.vectors import match_filter

    assert await index.count(name, match_filter({"document_id": md.id})) == 0


async def test_documents_are_isolated_between_users(memory: Any, user: str, other: str) -> None:
    mine, theirs = memory.client(user), memory.client(other)
    doc = await theirs.UploadDocument(m.UploadDocumentRequest(filename="secret.txt",
                                                              content=b"The launch code is ORCHID-991."))
    await wait_ready(theirs, doc.id)
    hits = await mine.SearchDocuments(m.SearchDocumentsRequest(query="launch code ORCHID-991"))
    assert not hits.hits
    assert not (await mine.ListDocuments(m.ListDocumentsRequest())).documents
    for call, request in [(mine.GetDocument, m.GetDocumentRequest(id=doc.id)),
                          (mine.GetDocument, m.GetDocumentRequest(id=doc.id, include_content=True)),
                          (mine.DeleteDocument, m.DeleteDocumentRequest(id=doc.id))]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await theirs.GetDocument(m.GetDocumentRequest(id=doc.id))).document.status == "ready"


@pytest.mark.parametrize("content, detail", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
    (b"\xff\xfe\x00binary\x00", "UTF-8"),
    (b"plain\x00text", "NUL"),
])
async def test_unsupported_or_empty_files_are_refused(memory: Any, user: str, content: bytes, detail: str) -> None:
    c = memory.client(user)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.UploadDocument(m.UploadDocumentRequest(filename="x.md", content=content))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and detail in info.value.details()
    assert not (await c.ListDocuments(m.ListDocumentsRequest())).documents


async def test_a_file_over_the_limit_is_refused(memory: Any, user: str) -> None:
    c = memory.client(user)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.UploadDocument(m.UploadDocumentRequest(filename="big.txt",
                                                       content=b"a" * (memory.settings.max_document_bytes + 1)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in info.value.details()


async def test_an_unreadable_pdf_fails_with_a_reason(memory: Any, user: str) -> None:
    c = memory.client(user)
    doc = await c.UploadDocument(m.UploadDocumentRequest(filename="broken.pdf", content=b"%PDF-1.7\n garbage"))
    done = await wait_ready(c, doc.id)
    assert done.status == "failed" and done.error


@pytest.mark.parametrize("fields", [{"description": "r\x00x"}, {"filename": "a\x00.md"}, {"tags": ["ok", "b\x00d"]}])
async def test_a_nul_in_a_documents_fields_is_refused(memory: Any, user: str, fields: dict[str, Any]) -> None:
    """Multipart fields pass the gateway's JSON NUL guard; PostgreSQL stores no NUL: bad input, not a 502."""
    c = memory.client(user)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.UploadDocument(m.UploadDocumentRequest(**{"filename": "x.md", "content": b"hello", **fields}))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "NUL" in info.value.details()
    assert not (await c.ListDocuments(m.ListDocumentsRequest())).documents


async def test_a_nul_in_memory_text_or_metadata_is_refused(memory: Any, user: str) -> None:
    c = memory.client(user)
    for request in [m.AddMemoriesRequest(items=[m.MemoryInput(content="a\x00b")]),
                    m.AddMemoriesRequest(items=[m.MemoryInput(content="ok", metadata_json=b'{"k": "\\u0000"}')])]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await c.AddMemories(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "NUL" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.UpsertEntity(m.UpsertEntityRequest(name="n\x00", type="t"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
