"""The keyword signal of hybrid search: a sparse vector of hashed, stemmed terms, BM25-style.

Words come from a Unicode regular expression; identifiers such as ``INV-2024-0042`` or ``user_id`` are
kept whole as well as split into their parts, so an exact identifier matches exactly. Each part is
stemmed with the Snowball English stemmer (``snowballstemmer``) after dropping common English stop words.
A document's value for a term is BM25's saturated term frequency; Qdrant multiplies it by the term's
IDF over the collection (the collection is created with ``Modifier.IDF``), so the sum of products at
query time is BM25. A query's terms each weigh 1. FastEmbed's ``Qdrant/bm25`` does the same but
fetches its files from a model hub at run time, which does not work offline.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache

import snowballstemmer

from sutazai_memory.vectors import Sparse

_WORD = re.compile(r"\w+(?:[-_./:#]\w+)*", re.UNICODE)
_SPLIT = re.compile(r"[-_./:#]")
K1 = 1.2
B = 0.75
AVG_LEN = 256.0  # as FastEmbed's bm25; chunks are shorter, which only favours short texts slightly

STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
""".split())

_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def terms(text: str) -> list[str]:
    """The indexed terms of ``text``, in order, with repeats."""
    out: list[str] = []
    for match in _WORD.finditer(text.lower()):
        word = match.group(0)
        parts = [p for p in _SPLIT.split(word) if p]
        if len(parts) > 1:
            out.append(word)  # the identifier as written
        out.extend(_stem(p) for p in parts if p not in STOP_WORDS)
    return out


def count_tokens(text: str) -> int:
    """Words and punctuation marks: the chunker's measure of length (close to, and below, word pieces)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@lru_cache(maxsize=65536)
def term_id(term: str) -> int:
    """A stable 31-bit id of a term (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little") & 0x7FFFFFFF


def document_vector(text: str) -> Sparse:
    found = terms(text)
    counts = Counter(term_id(t) for t in found)
    length = len(found)
    norm = K1 * (1 - B + B * length / AVG_LEN)
    indices = sorted(counts)
    return Sparse(indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices])


def query_vector(text: str) -> Sparse:
    indices = sorted({term_id(t) for t in terms(text)})
    return Sparse(indices, [1.0] * len(indices))
