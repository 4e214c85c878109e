"""Hybrid retrieval: dense (the store's vector index) + BM25 (bm25s), fused by reciprocal rank.

What gets indexed is a memory's *index text*: the session date and speaker in front of the
content, and the neighbouring turn it was said after. Both retrievers see the same text and
search only the subset of memories the filters allow.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import bm25s
import numpy as np
import Stemmer

from cubemem.embed import Embedder
from cubemem.model import Filters, MemoryItem, Status
from cubemem.store.base import Embedding, MemoryStore

log = logging.getLogger(__name__)

RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009)."""


def index_text(item: MemoryItem) -> str:
    """The text both retrievers index for ``item``."""
    parts = []
    when = item.provenance.occurred_at
    if when is not None:
        parts.append(f"[{when:%d %B %Y}]")
    if item.provenance.speaker:
        parts.append(f"{item.provenance.speaker}:")
    parts.append(item.content)
    if item.context:
        parts.append(f"(after: {item.context})")
    return " ".join(parts)


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def embed_items(embedder: Embedder, items: Sequence[MemoryItem]) -> dict[str, Embedding]:
    """Embed the index texts of ``items`` in one batched call."""
    texts = [index_text(item) for item in items]
    vectors = embedder.embed_documents(texts)
    return {
        item.id: Embedding(vector, digest(text))
        for item, text, vector in zip(items, texts, vectors, strict=True)
    }


class _Tokenizer:
    """Lower-case words, English stop words removed, Snowball-stemmed."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN_PLUS)
        self._split = bm25s.tokenization.Tokenizer().splitter

    def __call__(self, text: str) -> list[str]:
        words = [w for w in self._split(text.lower()) if w not in self._stopwords]
        return self._stemmer.stemWords(words)


@dataclass
class _LexicalIndex:
    revision: int
    ids: list[str]
    positions: dict[str, int]
    bm25: bm25s.BM25 | None


class HybridRetriever:
    """Dense + BM25 over the filtered subset; the BM25 index is cached per store revision."""

    def __init__(self, store: MemoryStore, embedder: Embedder, *, pool: int = 50) -> None:
        self._store = store
        self._embedder = embedder
        self._pool = pool
        self._tokenize = _Tokenizer()
        self._lexical: _LexicalIndex | None = None
        self._lock = threading.Lock()

    def search(
        self, query: str, k: int, filters: Filters, now: datetime
    ) -> list[tuple[str, float, float | None, float | None]]:
        """Top ``k`` as (id, fused score, dense similarity, BM25 score), best first."""
        allowed = self._store.match_ids(filters, now=now)
        if not allowed:
            return []
        pool = max(self._pool, 2 * k)
        lexical = self._lexical_search(query, allowed, pool)
        unfiltered = filters == Filters() and self._store.count(
            Filters(status=list(Status), include_expired=True), now=now
        ) == len(allowed)
        dense = self._store.nearest(
            self._embedder.embed_query(query), pool, None if unfiltered else allowed
        )
        fused: dict[str, float] = {}
        for ranking in (dense, lexical):
            for rank, (id_, _) in enumerate(ranking):
                fused[id_] = fused.get(id_, 0.0) + 1.0 / (RRF_K + rank + 1)
        dense_scores, lexical_scores = dict(dense), dict(lexical)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [(id_, s, dense_scores.get(id_), lexical_scores.get(id_)) for id_, s in best]

    def _lexical_search(self, query: str, allowed: list[str], pool: int) -> list[tuple[str, float]]:
        index = self._current_index()
        if index.bm25 is None:
            return []
        tokens = [t for t in self._tokenize(query) if t in index.bm25.vocab_dict]
        if not tokens:
            return []
        mask = np.zeros(len(index.ids), dtype=np.float32)
        mask[[index.positions[i] for i in allowed if i in index.positions]] = 1.0
        scores = index.bm25.get_scores(tokens, weight_mask=mask)
        n = min(pool, int((scores > 0).sum()))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(index.ids[i], float(scores[i])) for i in top]

    def _current_index(self) -> _LexicalIndex:
        revision = self._store.revision()
        with self._lock:
            if self._lexical is None or self._lexical.revision != revision:
                self._lexical = self._build(revision)
            return self._lexical

    def _build(self, revision: int) -> _LexicalIndex:
        everything = Filters(status=list(Status), include_expired=True)
        items = self._store.select(everything, now=datetime.now().astimezone())
        ids = [item.id for item in items]
        corpus = [self._tokenize(index_text(item)) for item in items]
        bm25 = None
        if any(corpus):
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        log.debug("built BM25 index over %d memories at revision %d", len(ids), revision)
        return _LexicalIndex(revision, ids, {id_: i for i, id_ in enumerate(ids)}, bm25)
