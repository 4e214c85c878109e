"""Hybrid retrieval: dense (exact, or the store's vector index) + BM25, fused by score.

What gets indexed for a memory is its *index text*: the session date and speaker in front of
the content. Conversation turns carry their neighbours too, because an answer ("Yes, next
Tuesday") is often found by the words of the turn around it:

- dense: one vector of the index text (plus, averaged in, one of the text with its
  ``context`` when a caller supplied context);
- lexical: BM25 over the turn with the turns before and after it in its session;
- fusion: the dense cosine (less the candidate pool's lowest) plus a weighted share of the
  query's ideal BM25 score, then each turn inherits a share of its best neighbour's score, so
  evidence next to a strong match rises with it.

Both search what the filters allow, over a ``SearchIndex`` the change feed keeps current
(persisted: ``cubemem.index_file``). Defaults: chosen leave-one-conversation-out on LoCoMo's
dev conversations, short facts at least as well as by dense search (docs/benchmarks.md)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cubemem import timewords
from cubemem.embed import Embedder
from cubemem.entities import WORDS
from cubemem.errors import InvalidInputError
from cubemem.graph_names import match_names
from cubemem.index_file import Keeper
from cubemem.lexical import Analyzer
from cubemem.model import Filters
from cubemem.searchindex import SearchIndex
from cubemem.store.base import MemoryStore

log = logging.getLogger(__name__)

RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009)."""


@dataclass(frozen=True)
class RetrievalConfig:
    """The knobs of hybrid retrieval; the defaults are the measured best (docs/benchmarks.md:
    leave-one-conversation-out on LoCoMo turns and observations, and the short-fact set)."""

    fusion: str = "score"
    """``"score"``: dense cosine (less the dense pool's lowest) plus the BM25 score as a share
    of the query's ideal score, each weighted; ``"rrf"``: weighted reciprocal rank fusion
    with the BM25 score as a multiplier (the earlier default)."""
    dense_weight: float = 1.0
    lexical_weight: float = 0.7
    lexical_score_power: float = 1.0
    neighbour_share: float = 0.3
    """Each conversation turn gains this share of its best neighbour's fused score …"""
    second_neighbour_share: float = 0.2
    """… and this share of the best score two turns away."""
    session_share: float = 0.3
    """Each turn gains this share of its session's best fused score, relative to the best
    session's (find the session, then the turn)."""
    dense_pool: int = 400
    """Candidates taken from the vector index."""
    lexical_pool: int = 400
    """Candidates taken from BM25."""
    exact_limit: int = 20_000
    """Filtered subsets up to this size are scored exactly instead of through the index."""
    remote_exact_limit: int = 200_000
    """The same when the vector index is across the network (PostgreSQL, a Chroma server):
    scanning 10^5 vectors here (~10 ms) beats a round trip to an HNSW index (16 ms, measured)."""
    lexical_neighbours: bool = True
    """Index each conversation turn for BM25 together with the turns before and after it."""
    short_tokens: bool = True
    """Keep numbers and one-character words in the BM25 analyzer ("item 4" is not "item 40")."""
    lexical_scale: str = "ideal"
    """What a BM25 score is divided by before fusion: ``"ideal"``, the score a document of
    average length holding every query term once would get (so a query matched only by words
    common to every memory weighs little), or ``"top"``, the best score of this query."""

    entity_weight: float = 0.1
    """Weight of the entity signal: a memory mentioning an entity the query names gains this
    (shared among the query's entities); 0 turns the graph off."""
    entity_neighbour_share: float = 0.1
    """… and a memory mentioning another entity of the best of those memories this share of
    it, by that memory's score (the way to "Ana's climbing partner" from "Ana")."""
    entity_neighbours: int = 5
    """How many of the best memories mentioning a query entity lend their other entities."""
    entity_expand: int = 50
    """Memories the graph brings in beyond the dense and BM25 candidates, at most."""
    entity_match: float = 0.9
    """Names embedding this close (cosine) are one entity (``cubemem.graph_names``); 0: off."""
    speaker_weight: float = 0.5
    """A turn said by a person the query names scores × (1 + this), shared among the people
    named (on LoCoMo 97% of the evidence for a question naming a speaker is her own turns). A
    factor, not a sum, so her chatter does not pass a fact about her. Only turns; part of the
    graph (off with ``entity_weight=0``)."""

    time_weight: float = 0.2
    """Weight of the time signal: when the query names a time ("in May 2023", "last week",
    read against the cube's clock; ``cubemem.timewords``), memories whose valid time starts
    in that window — or up to ``time_slack_days`` after it, when it was told — gain this."""
    time_slack_days: float = 14.0

    assistant_factor: float = 0.85
    """In a user–assistant conversation an assistant's turn scores × this: what the user said
    about themselves and their work is the memory, the assistant's answer its context."""
    chat: tuple[tuple[str, float], ...] = (
        ("entity_weight", 0.0),
        ("lexical_weight", 0.1),
        ("neighbour_share", 0.0),
        ("second_neighbour_share", 0.0),
        ("session_share", 0.0),
    )
    """Where most of the searched memories are turns of user–assistant conversations (their
    speakers are chat roles, ``entities.ROLES``), these knobs (name, value) replace the ones
    above: the signals measured on conversations between people are gated by what the cube
    holds (docs/benchmarks.md)."""

    def __post_init__(self) -> None:
        knobs = {f.name for f in fields(self)} - {"chat"}
        unknown = [name for name, _ in self.chat if name not in knobs]
        if unknown:
            raise InvalidInputError(f"chat names knobs RetrievalConfig does not have: {unknown}")
        if self.fusion not in ("score", "rrf"):
            raise InvalidInputError(f"fusion must be 'score' or 'rrf', got {self.fusion!r}")
        if self.lexical_scale not in ("ideal", "top"):
            raise InvalidInputError(
                f"lexical_scale must be 'ideal' or 'top', got {self.lexical_scale!r}"
            )


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result as the retriever sees it."""

    id: str
    score: float
    """The fused ranking score (dense + BM25 + neighbours); comparable within one search."""
    dense: float | None
    """Cosine similarity of the memory's vector and the query's (None: dense not run)."""
    lexical: float | None
    """BM25 score as a share of the query's ideal score, in [0, 1] (None: no query terms)."""
    relevance: float
    """``relevance(...)``: how likely the memory itself is what the query asks for, in [0, 1]."""
    time: float = 0.0  # what the time words added to ``score``
    entity: float = 0.0  # what the entity graph added
    own: float = 0.0  # the share of the query's words in the memory's own text
    assistant: bool = False  # an assistant's turn of a user–assistant chat


RELEVANCE = (-6.354, 6.654, 4.85, -4.028, -1.958)
"""The calibration of ``relevance``: intercept, cosine, own-word share, their product, an
assistant's turn. Fitted by logistic regression on the top ten results of every question of
both dev files (LoCoMo's conversations and BEAM's user–assistant chats, weighted equally;
evidence against the rest, questions with nothing to find included):
``benchmarks/fit_relevance.py`` refits them (docs/benchmarks.md, "Relevance")."""


def relevance(dense: float | None, own: float | None, assistant: bool = False) -> float:
    """How likely a memory is to be what a query asks for, from its own match alone, in
    [0, 1]: its cosine with the query (negative counts as 0), the share of the query's
    words (by idf) in its own text, and whether it is an assistant's turn of a chat.

    Calibrated on two kinds of conversation, so a threshold means the same in both; it never
    depends on the memory's neighbours, its session, the entity graph or what else is in the
    cube — those reorder results (``score``) but never lift it (docs/concepts.md,
    "Relevance")."""
    cosine = 0.0 if dense is None else max(0.0, min(1.0, dense))
    share = 0.0 if own is None else max(0.0, min(1.0, own))
    a, b, c, d, e = RELEVANCE
    z = a + b * cosine + c * share + d * cosine * share + e * assistant
    return round(1.0 / (1.0 + math.exp(-z)), 6)


class HybridRetriever:
    """Dense + BM25 over the filtered subset, from a ``SearchIndex`` kept current by the
    store's change feed (a write costs the search after it what the write changed)."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
        *,
        folder: Path | None = None,
        cube_id: str | None = None,
    ) -> None:
        """``folder``: where the index is persisted (``cubemem.index_file``; None: never);
        ``cube_id``: named in the file, so another cube's file is refused."""
        self._cube_id = cube_id
        self._store = store
        self._embedder = embedder
        self.config = config or RetrievalConfig()
        self._index: SearchIndex | None = None
        self._lock = threading.Lock()
        self._keeper = Keeper(folder)
        self.origin: str | None = None  # where the index came from: "file" or "rows"

    def search(
        self,
        query: str,
        k: int,
        filters: Filters,
        now: datetime,
        *,
        valid_at: datetime | None = None,
        ended: bool = False,
        only: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Top ``k``, best first, each with its fused score and its own match (``Hit``).

        On the valid timeline: memories true at ``valid_at`` when given, else those not ended
        by ``now`` (all of them with ``ended=True``); ``only``: among these ids."""
        cfg = self.config
        # a retriever weighted 0 is not asked at all (its hits would only add zero scores)
        vector = None
        if cfg.dense_weight:
            vector = np.asarray(self._embedder.embed_query(query), dtype=np.float32)
        with self._lock:
            index = self._current_index()
            mask = index.mask(
                filters,
                now,
                lambda: self._store.match_ids(filters, now=now),
                valid_at=valid_at,
                ended=ended,
                only=only,
            )
            allowed = int(mask.sum())
            if not allowed:
                return []
            role, chat = index.roles(mask)
            if cfg.chat and chat >= 0.5:  # mostly user–assistant turns: the chat knobs
                knobs: dict[str, Any] = dict(cfg.chat)
                cfg = replace(cfg, **knobs)
            dense_pool, lexical_pool = max(cfg.dense_pool, 2 * k), max(cfg.lexical_pool, 2 * k)
            tokens = index.tokenize(query) if cfg.lexical_weight else []
            lexical = index.lexical_top(tokens, mask, lexical_pool) if tokens else []
            scale = lexical[0][1] if lexical else 1.0
            ideal = index.lexical.ideal(tokens) if lexical else 1.0
            if lexical and cfg.lexical_scale == "ideal":
                scale = ideal if cfg.fusion == "score" else max(ideal, scale)
            limit = cfg.remote_exact_limit if self._store.remote_index else cfg.exact_limit
            exact = allowed <= limit or not self._store.owns_index
            dense: list[tuple[int, float]] | None = []
            if vector is not None:
                dense = index.dense_top(vector, mask, dense_pool) if exact else None
        if dense is None:  # a large subset: over-fetch from the vector index, then filter
            assert vector is not None
            excluded = len(mask) - allowed
            fetch = (
                dense_pool + excluded
                if excluded <= dense_pool
                else int(dense_pool * len(mask) / allowed * 1.5)
            )
            hits = self._store.nearest(vector, min(fetch, len(mask)), None)
        with self._lock:
            if dense is None:
                slots = index.slots
                dense = [
                    (slot, score)
                    for slot, score in ((slots.get(id_, -1), score) for id_, score in hits)
                    if 0 <= slot < len(mask) and mask[slot]
                ][:dense_pool]
            fused = self._fuse(cfg, dense, lexical, scale)
            f0 = dict(fused)  # then + time words (f1), + the graph (f2): each signal's part
            if cfg.time_weight and (span := timewords.window(query, now)) is not None:
                index.boost_window(
                    fused,
                    mask,
                    span[0],
                    span[1] + timedelta(days=cfg.time_slack_days),
                    cfg.time_weight,
                )
            f1 = dict(fused)
            if cfg.entity_weight:
                index.graph.boost(
                    fused,
                    mask,
                    WORDS.findall(query),
                    weight=cfg.entity_weight,
                    share=cfg.entity_neighbour_share,
                    leads=cfg.entity_neighbours,
                    expand=cfg.entity_expand,
                    speaker=cfg.speaker_weight,
                    owner=filters.user,
                )
            f2 = dict(fused)
            if cfg.neighbour_share or cfg.second_neighbour_share or cfg.session_share:
                fused = self._spread(cfg, fused, index, mask)
            if cfg.assistant_factor != 1.0 and chat:
                for slot in fused:
                    if role[slot] == 2:
                        fused[slot] *= cfg.assistant_factor
            ids = index.ids
            best = sorted(fused.items(), key=lambda kv: (-kv[1], ids[kv[0]]))[:k]
            lexical_scores = dict(lexical)
            cosines = {} if vector is None else index.similarity(vector, [s for s, _ in best])
            words = tokens or index.tokenize(query)
            own = index.own_share(words, [s for s, _ in best])
            found = []
            for slot, s in best:
                cosine = cosines.get(slot)
                bm25 = lexical_scores.get(slot, 0.0) if tokens else None
                share = None if bm25 is None else min(1.0, bm25 / ideal)
                t, e = f1.get(slot, 0) - f0.get(slot, 0), f2.get(slot, 0) - f1.get(slot, 0)
                said = bool(role[slot] == 2)
                mine = relevance(cosine, own[slot], said)
                found.append(Hit(ids[slot], s, cosine, share, mine, t, e, own[slot], said))
            return found

    @staticmethod
    def _fuse(
        cfg: RetrievalConfig,
        dense: list[tuple[int, float]],
        lexical: list[tuple[int, float]],
        scale: float,
    ) -> dict[int, float]:
        fused: dict[int, float] = {}
        if cfg.fusion == "score":
            # Scores, not ranks: a fact whose cosine stands far above the rest keeps its lead,
            # and BM25 counts by how much of the query's rare words a memory holds.
            floor = dense[-1][1] if dense else 0.0
            for slot, similarity in dense:
                fused[slot] = cfg.dense_weight * (similarity - floor)
            for slot, score in lexical:
                share = min(1.0, score / scale) ** cfg.lexical_score_power
                fused[slot] = fused.get(slot, 0.0) + cfg.lexical_weight * share
            return fused
        for rank, (slot, _) in enumerate(dense):
            fused[slot] = cfg.dense_weight / (RRF_K + rank + 1)
        for rank, (slot, score) in enumerate(lexical):
            # the scaled BM25 score keeps one common word from tying with the rare ones
            weight = cfg.lexical_weight * (score / scale) ** cfg.lexical_score_power
            fused[slot] = fused.get(slot, 0.0) + weight / (RRF_K + rank + 1)
        return fused

    @staticmethod
    def _spread(
        cfg: RetrievalConfig, fused: dict[int, float], index: SearchIndex, mask: np.ndarray
    ) -> dict[int, float]:
        """Conversation turns gain shares of their neighbours' and their session's scores
        (other memories have neither and keep their score)."""
        targets = set(fused)
        for slot in fused:
            targets.update(n for n in index.neighbours(slot) if mask[n])
        sessions: dict[tuple[str | None, str] | None, float] = {}
        if cfg.session_share:
            for slot, score in fused.items():
                key = index.session_of(slot)
                if key is not None and score > sessions.get(key, 0.0):
                    sessions[key] = score
        best_session = max(sessions.values(), default=0.0)
        get, neighbours, session_of = fused.get, index.neighbours, index.session_of
        share, share2 = cfg.neighbour_share, cfg.second_neighbour_share
        session_share = cfg.session_share / best_session if best_session > 0 else 0.0
        out = {}
        for t in targets:
            around = neighbours(t)
            score = get(t, 0.0)
            if around:
                score += share * max([get(n, 0.0) for n in around])
                if share2:
                    two = [get(m, 0.0) for n in around for m in neighbours(n) if m != t]
                    if two:
                        score += share2 * max(two)
            if session_share:
                score += session_share * sessions.get(session_of(t), 0.0)
            out[t] = score
        return out

    @contextmanager
    def view(
        self, filters: Filters, now: datetime, *, valid_at: datetime | None = None
    ) -> Iterator[tuple[SearchIndex, np.ndarray]]:
        """The index, current, and the slots ``filters`` allow on the valid timeline (as in
        ``search``), held still while the caller reads them (the entity graph's readers)."""
        with self._lock:
            index = self._current_index()
            match = lambda: self._store.match_ids(filters, now=now)  # noqa: E731
            yield index, index.mask(filters, now, match, valid_at=valid_at)

    def warm(self) -> None:
        """Load the embedder and bring the index up to date now, so the first search costs
        what every later one does (servers and workers call it at start-up); the index is
        written to its file when it is well behind the rows."""
        if self.config.dense_weight:
            self._embedder.embed_query("warm up")
        with self._lock:
            index = self._current_index()
            self._keeper.save(index, self._meta())

    def forget(self) -> None:
        """After a forget: drop the index (its vocabulary holds the forgotten words) and its
        file; the next search builds both from the rows."""
        with self._lock:
            self._index = None
            self._keeper.discard(self._store.revision())

    def close(self) -> None:
        """Write the index to its file if it is well behind (``Keeper``)."""
        with self._lock:
            if self._index is not None:
                self._keeper.save(self._index, self._meta())

    def _meta(self) -> dict[str, object]:
        """What a persisted index must have been built with to be loaded."""
        cfg = self.config
        return {
            "cube": self._cube_id,
            "embedder": self._embedder.name,
            "dimension": self._embedder.dimension,
            "neighbours": cfg.lexical_neighbours,
            "short_tokens": cfg.short_tokens,
            "entity_match": cfg.entity_match,
        }

    def _current_index(self) -> SearchIndex:
        """The index brought up to the store's revision: loaded from its file, or built from
        every row (then written to the file), the first time; after that, what changed."""
        cfg = self.config
        index = self._index
        if index is None or (index.with_neighbours, index.short_tokens) != (
            cfg.lexical_neighbours,
            cfg.short_tokens,
        ):
            tokenize = Analyzer(keep_short=cfg.short_tokens)
            index = self._keeper.load(self._store.revision(), self._meta()) or SearchIndex(
                tokenize, with_neighbours=cfg.lexical_neighbours, short_tokens=cfg.short_tokens
            )
            self.origin = "rows" if index.revision < 0 else "file"
            index.tokenize = tokenize
            self._index = index
        full = index.revision < 0
        changes = self._store.changes(index.revision)
        if changes.revision != index.revision:
            index.apply(changes)
            if cfg.entity_match:
                match_names(index.graph, self._embedder.embed_documents, cfg.entity_match)
            index.graph.set_links(self._store.entity_links())
            self._keeper.applied(len(changes.rows) + len(changes.purged), full, changes.revision)
            log.debug("index at revision %d (%d changes)", changes.revision, self._keeper.behind)
        if full:
            self._keeper.save(index, self._meta())
        return index
