"""Hybrid retrieval: dense (the store's vector index) + BM25 (bm25s), fused by reciprocal rank.

What gets indexed for a memory is its *index text*: the session date and speaker in front of
the content. Conversation turns carry their neighbours too, because an answer ("Yes, next
Tuesday") is often found by the words of the turn around it:

- dense: one vector of the index text (plus, averaged in, one of the text with its
  ``context`` when a caller supplied context);
- lexical: BM25 over the turn with the turns before and after it in its session;
- fusion: weighted reciprocal rank, then each turn inherits a share of its best
  neighbour's score, so evidence next to a strong match rises with it.

Both retrievers search only the subset of memories the filters allow. The defaults were
chosen on LoCoMo's dev conversations (see docs/benchmarks.md for the measurements).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import bm25s
import numpy as np
import Stemmer

from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.model import Filters, MemoryItem, Status
from cubemem.store.base import Embedding, MemoryStore

log = logging.getLogger(__name__)

RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009)."""


@dataclass(frozen=True)
class RetrievalConfig:
    """The knobs of hybrid retrieval; the defaults are the measured best."""

    dense_weight: float = 1.0
    lexical_weight: float = 2.0
    lexical_score_power: float = 0.5
    neighbour_share: float = 0.3
    dense_pool: int = 400
    """Candidates taken from the vector index."""
    lexical_pool: int = 400
    """Candidates taken from BM25."""
    exact_limit: int = 20_000
    """Filtered subsets up to this size are scored exactly instead of through the index."""
    lexical_neighbours: bool = True
    """Index each conversation turn for BM25 together with the turns before and after it."""


def index_text(item: MemoryItem) -> str:
    """The memory as a retriever sees it: ``[date] speaker: content``."""
    parts = []
    when = item.provenance.occurred_at
    if when is not None:
        parts.append(f"[{when:%d %B %Y}]")
    if item.provenance.speaker:
        parts.append(f"{item.provenance.speaker}:")
    parts.append(item.content)
    return " ".join(parts)


def dense_texts(item: MemoryItem) -> list[str]:
    """The texts whose vectors are averaged into the memory's one vector."""
    text = index_text(item)
    return [text, f"{text} (after: {item.context})"] if item.context else [text]


def digest(texts: Sequence[str]) -> str:
    return hashlib.blake2b("\x1f".join(texts).encode("utf-8"), digest_size=12).hexdigest()


def embed_items(embedder: Embedder, items: Sequence[MemoryItem]) -> dict[str, Embedding]:
    """One vector per memory, all texts embedded in one batched call."""
    texts = [dense_texts(item) for item in items]
    flat = [t for group in texts for t in group]
    vectors = np.asarray(embedder.embed_documents(flat), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(flat):
        raise InvalidInputError(
            f"embedder {embedder.name!r} returned {vectors.shape} for {len(flat)} texts; "
            "it must return one vector per text"
        )
    out, start = {}, 0
    for item, group in zip(items, texts, strict=True):
        out[item.id] = Embedding(vectors[start : start + len(group)].mean(axis=0), digest(group))
        start += len(group)
    return out


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
class _SearchIndex:
    """Everything search needs that is derived from the rows, rebuilt when they change."""

    revision: int
    with_neighbours: bool
    ids: list[str]
    positions: dict[str, int]
    neighbours: dict[str, tuple[str, ...]]
    bm25: bm25s.BM25 | None
    active: np.ndarray
    """True where the memory's status is active."""
    expires: np.ndarray
    """Expiry as a POSIX timestamp, +inf where none."""

    def default_mask(self, now: datetime) -> np.ndarray:
        """What ``Filters()`` allows: active and not expired."""
        return self.active & (self.expires > now.timestamp())

    def mask_of(self, ids: Sequence[str]) -> np.ndarray:
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[[self.positions[i] for i in ids if i in self.positions]] = True
        return mask


def _conversation_neighbours(items: Sequence[MemoryItem]) -> dict[str, tuple[str, ...]]:
    """Turns next to each other in one session, in the order they were stored."""
    sessions: dict[tuple[str | None, str], list[str]] = {}
    for item in items:
        if item.provenance.source == "message" and item.scope.session is not None:
            key = (item.scope.user, item.scope.session)
            sessions.setdefault(key, []).append(item.id)
    neighbours: dict[str, tuple[str, ...]] = {}
    for turns in sessions.values():
        for i, id_ in enumerate(turns):
            neighbours[id_] = tuple(turns[j] for j in (i - 1, i + 1) if 0 <= j < len(turns))
    return neighbours


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest finite scores, best first (ties keep position order)."""
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, n - 1)[:n]
    return top[np.argsort(-scores[top], kind="stable")]


class HybridRetriever:
    """Dense + BM25 over the filtered subset; the BM25 index is cached per store revision."""

    def __init__(
        self, store: MemoryStore, embedder: Embedder, config: RetrievalConfig | None = None
    ) -> None:
        self._store = store
        self._embedder = embedder
        self.config = config or RetrievalConfig()
        self._tokenize = _Tokenizer()
        self._index: _SearchIndex | None = None
        self._lock = threading.Lock()

    def search(
        self, query: str, k: int, filters: Filters, now: datetime
    ) -> list[tuple[str, float, float | None, float | None]]:
        """Top ``k`` as (id, fused score, dense similarity, BM25 score), best first."""
        cfg = self.config
        index = self._current_index()
        if filters == Filters():
            mask = index.default_mask(now)  # the common case needs no SQL
        else:
            mask = index.mask_of(self._store.match_ids(filters, now=now))
        if not mask.any():
            return []
        lexical = self._lexical_search(index, query, mask, max(cfg.lexical_pool, 2 * k))
        dense = self._dense_search(index, query, mask, max(cfg.dense_pool, 2 * k))
        fused: dict[str, float] = {}
        for rank, (id_, _) in enumerate(dense):
            fused[id_] = cfg.dense_weight / (RRF_K + rank + 1)
        top = lexical[0][1] if lexical else 1.0
        for rank, (id_, score) in enumerate(lexical):
            # Rank fusion flattens the head of a ranking; the relative BM25 score keeps a
            # turn that matched one common word from tying with one that matched the rare ones.
            weight = cfg.lexical_weight * (score / top) ** cfg.lexical_score_power
            fused[id_] = fused.get(id_, 0.0) + weight / (RRF_K + rank + 1)
        if cfg.neighbour_share:
            fused = self._spread(fused, index, mask, cfg.neighbour_share)
        dense_scores, lexical_scores = dict(dense), dict(lexical)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [(id_, s, dense_scores.get(id_), lexical_scores.get(id_)) for id_, s in best]

    def _dense_search(
        self, index: _SearchIndex, query: str, mask: np.ndarray, pool: int
    ) -> list[tuple[str, float]]:
        """Nearest allowed memories: from the vector index, or exactly when the subset is small.

        A vector index answers an allow-list slowly (tens of ms at 10^5 items), so a small
        filtered subset is scored exactly from the vectors its rows keep, and a large one is
        over-fetched from the index and filtered.
        """
        vector = self._embedder.embed_query(query)
        allowed = int(mask.sum())
        excluded = len(mask) - allowed
        if excluded > pool and allowed <= self.config.exact_limit:
            ids, matrix = self._store.vectors([index.ids[i] for i in np.flatnonzero(mask)])
            if not ids:
                return []
            scores = matrix @ np.asarray(vector, dtype=np.float32)
            return [(ids[i], float(scores[i])) for i in _top(scores, pool)]
        fetch = pool + excluded if excluded <= pool else int(pool * len(mask) / allowed * 1.5)
        hits = self._store.nearest(vector, min(fetch, len(mask)), None)
        positions = index.positions
        return [h for h in hits if h[0] in positions and mask[positions[h[0]]]][:pool]

    @staticmethod
    def _spread(
        fused: dict[str, float], index: _SearchIndex, mask: np.ndarray, share: float
    ) -> dict[str, float]:
        """Each turn gains ``share`` of its best-scoring neighbour's fused score."""
        neighbours = index.neighbours
        targets = set(fused)
        for id_ in fused:
            targets.update(n for n in neighbours.get(id_, ()) if mask[index.positions[n]])
        return {
            t: fused.get(t, 0.0)
            + share * max((fused.get(n, 0.0) for n in neighbours.get(t, ())), default=0.0)
            for t in targets
        }

    def _lexical_search(
        self, index: _SearchIndex, query: str, mask: np.ndarray, pool: int
    ) -> list[tuple[str, float]]:
        if index.bm25 is None:
            return []
        tokens = [t for t in self._tokenize(query) if t in index.bm25.vocab_dict]
        if not tokens:
            return []
        scores = index.bm25.get_scores(tokens, weight_mask=mask.astype(np.float32))
        scores[scores <= 0] = -np.inf
        return [(index.ids[i], float(scores[i])) for i in _top(scores, pool)]

    def _current_index(self) -> _SearchIndex:
        revision = self._store.revision()
        with self._lock:
            current = self._index
            wanted = self.config.lexical_neighbours
            if current is None or (current.revision, current.with_neighbours) != (revision, wanted):
                current = self._index = self._build(revision, wanted)
            return current

    def _build(self, revision: int, with_neighbours: bool) -> _SearchIndex:
        everything = Filters.everything()
        items = self._store.select(everything, now=datetime.now(UTC))
        by_id = {item.id: item for item in items}
        neighbours = _conversation_neighbours(items)
        corpus = []
        for item in items:
            around = [by_id[n] for n in neighbours.get(item.id, ())] if with_neighbours else []
            text = " ".join(
                [
                    index_text(item),
                    item.context or "",
                    *(f"{n.provenance.speaker}: {n.content}" for n in around),
                ]
            )
            corpus.append(self._tokenize(text))
        bm25 = None
        if any(corpus):
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        ids = list(by_id)
        log.debug("built BM25 index over %d memories at revision %d", len(ids), revision)
        return _SearchIndex(
            revision=revision,
            with_neighbours=with_neighbours,
            ids=ids,
            positions={id_: i for i, id_ in enumerate(ids)},
            neighbours=neighbours,
            bm25=bm25,
            active=np.array([item.status is Status.ACTIVE for item in items], dtype=bool),
            expires=np.array(
                [item.expires_at.timestamp() if item.expires_at else np.inf for item in items],
                dtype=np.float64,
            ),
        )
