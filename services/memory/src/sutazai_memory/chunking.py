"""Chunks of a document for embedding: split by structure (Markdown headings, lists, paragraphs;
sentences and words inside them) with ``semantic-text-splitter``, sized in tokens (``keywords.count_tokens``,
words and punctuation marks, which stays below the embedding model's word pieces), with overlap."""

from __future__ import annotations

from semantic_text_splitter import MarkdownSplitter, TextSplitter

from sutazai_memory.extract import MARKDOWN
from sutazai_memory.keywords import count_tokens


def chunk(text: str, content_type: str, *, tokens: int, overlap: int) -> list[str]:
    overlap = min(overlap, tokens // 2)
    capacity = (max(1, tokens // 2), tokens)
    splitter_type = MarkdownSplitter if content_type == MARKDOWN else TextSplitter
    splitter = splitter_type.from_callback(count_tokens, capacity, overlap=overlap)
    return [c for c in splitter.chunks(text) if c.strip()]
