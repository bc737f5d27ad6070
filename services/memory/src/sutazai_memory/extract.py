"""What a document is (sniffed from its bytes, never trusted from the client) and its text.

PDF by its signature (the ``filetype`` library), text and Markdown by being valid UTF-8 without NUL
bytes; Markdown when the name or the declared type says so. Text comes out of a PDF with ``pypdf``,
page by page."""

from __future__ import annotations

import io

import filetype
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from sutazai_memory.errors import InvalidInput

PDF = "application/pdf"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")


def sniff(content: bytes, filename: str, declared: str) -> str:
    """The content type of ``content``; InvalidInput for anything but text, Markdown or PDF."""
    kind = filetype.guess(content)
    if kind is not None:
        if kind.mime == PDF:
            return PDF
        raise InvalidInput(f"unsupported file type {kind.mime} (by its content): send text, Markdown or PDF")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("unsupported file: not PDF and not UTF-8 text") from None
    if "\x00" in text:
        raise InvalidInput("unsupported file: binary content (NUL bytes), not text")
    if filename.lower().endswith(_MARKDOWN_SUFFIXES) or declared.split(";")[0].strip() == MARKDOWN:
        return MARKDOWN
    return TEXT


def extract_text(content: bytes, content_type: str) -> str:
    """The document's text (blocking: run it in a thread). Raises ValueError for an unreadable PDF."""
    if content_type != PDF:
        return content.decode("utf-8-sig")
    try:
        reader = PdfReader(io.BytesIO(content))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"the PDF cannot be read: {exc}") from exc
    return "\n\n".join(p.strip() for p in pages if p.strip())
