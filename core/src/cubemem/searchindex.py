"""What a retriever keeps in memory, kept current from the store's change feed.

Every memory has a *slot*: its position in a handful of arrays (status, expiry, scope,
vector) and its BM25 document. A search first applies ``store.changes(since)`` (the rows
written and purged since the last search, from any process), which costs what changed, not
what the cube holds; then filters are masks over the slots and both retrievers score only the
masked subset.

A conversation turn's BM25 document includes the turns before and after it in its session
(an answer such as "Yes, next Tuesday" is found by the words around it), so a new turn also
rewrites its predecessor's document.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from cubemem.entities import ROLES, USER_ROLES
from cubemem.graph import EntityGraph
from cubemem.index_vectors import Vectors
from cubemem.lexical import BM25Index
from cubemem.model import Filters
from cubemem.store.base import Changes, IndexRow

Tokenize = Callable[[str], list[str]]


def index_text(content: str, speaker: str | None, occurred_at: datetime | None) -> str:
    """A memory as a retriever sees it: ``[date] speaker: content``."""
    parts = []
    if occurred_at is not None:
        parts.append(f"[{occurred_at:%d %B %Y}]")
    if speaker:
        parts.append(f"{speaker}:")
    parts.append(content)
    return " ".join(parts)


class _Column:
    """A growable array."""

    def __init__(self, dtype: type | np.dtype, fill: object) -> None:
        self.fill = fill
        self.data = np.full(256, fill, dtype=dtype)

    def reserve(self, size: int) -> None:
        if size > len(self.data):
            grown = np.full(max(size, 2 * len(self.data)), self.fill, dtype=self.data.dtype)
            grown[: len(self.data)] = self.data
            self.data = grown


class SearchIndex:
    """Slots, filter columns, vectors, conversation neighbours and BM25 for one cube."""

    def __init__(self, tokenize: Tokenize, *, with_neighbours: bool, short_tokens: bool) -> None:
        self.tokenize = tokenize
        self.with_neighbours = with_neighbours
        self.short_tokens = short_tokens
        self.revision = -1
        self.ids: list[str] = []
        self.slots: dict[str, int] = {}
        self._codes: dict[str, int] = {}
        self._named: list[str] = []  # code -> value (``_codes`` reversed)
        self._present = _Column(bool, False)
        self._status = _Column(np.int32, -1)
        self._kind = _Column(np.int32, -1)
        self._user = _Column(np.int32, -1)
        self._agent = _Column(np.int32, -1)
        self._session = _Column(np.int32, -1)
        self._expires = _Column(np.float64, np.inf)
        self._valid_from = _Column(np.float64, -np.inf)
        self._valid_to = _Column(np.float64, np.inf)
        self._has_vector = _Column(bool, False)
        self._speaker = _Column(np.int32, -1)
        """A turn's speaker (a code of ``_codes``): own-word shares leave its name out."""
        self._role = _Column(np.int8, 0)
        """A conversation turn's chat role: 1 the user's, 2 an assistant's, 0 a person's or
        not a turn (``entities.ROLES``)."""
        self._vectors: Vectors | None = None
        self.lexical = BM25Index()
        self.graph = EntityGraph()
        self._masks: dict[tuple[object, ...], np.ndarray] = {}
        """Column masks by filter (expiry aside), valid until the next change."""
        self._expiring = False
        """Whether any memory has ever had an expiry (else the expiry test is skipped)."""
        self._ending = False
        """Whether any memory has ever had an end of valid time (likewise)."""
        # conversation turns: (user, session) -> [(order, slot)], sorted
        self._sessions: dict[tuple[str | None, str], list[tuple[int, int]]] = {}
        self._turn: dict[int, tuple[tuple[str | None, str], int]] = {}
        self._around: dict[int, tuple[int, ...]] = {}
        """Neighbours looked up since the sessions last changed."""
        self._own: dict[int, list[str]] = {}
        self._said: dict[int, list[str]] = {}
        self._summary: dict[int, tuple[str | None, str]] = {}  # a session summary's session

    @property
    def size(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, object]:
        """What ``cubemem.index_file`` persists: not the analyzer (given back on load) nor
        the caches."""
        state = dict(self.__dict__)
        del state["tokenize"]
        state["_masks"], state["_around"] = {}, {}
        return state

    # -- applying changes -----------------------------------------------------------------
    def apply(self, changes: Changes) -> None:
        self._masks.clear()
        dirty: set[int] = set()
        gone: list[int] = []
        for id_ in changes.purged:
            slot = self.slots.get(id_)
            if slot is None or not self._present.data[slot]:
                continue
            self._present.data[slot] = False
            self._has_vector.data[slot] = False
            dirty.update(self._leave_session(slot))
            self._own.pop(slot, None), self._said.pop(slot, None), self._summary.pop(slot, None)
            self.graph.remove(slot)
            gone.append(slot)
        docs: dict[int, list[str]] = {}
        for row in changes.rows:
            slot = self._slot(row.id)
            self._set_row(slot, row)
            turn = row.source == "message"
            self.graph.put(slot, row.user or row.agent, row.content, row.speaker, row.triple, turn)
            own = self.tokenize(
                " ".join([index_text(row.content, row.speaker, row.occurred_at), row.context or ""])
            )
            self._summary.pop(slot, None)
            if row.source == "summary" and row.session is not None:  # shares its session's rank
                self._summary[slot] = (row.user, row.session)
            if turn and row.session is not None:
                dirty.update(self._leave_session(slot))
                dirty.update(self._join_session(slot, (row.user, row.session), row.order))
                self._own[slot] = own
                self._said[slot] = self.tokenize(f"{row.speaker or ''}: {row.content}")
            else:
                dirty.update(self._leave_session(slot))
                self._own.pop(slot, None)
                self._said.pop(slot, None)
                docs[slot] = own
        for slot in dirty:
            if slot in self._own:
                docs[slot] = self._document(slot)
        self.lexical.remove([s for s in gone if s not in docs])
        self.lexical.set_many(list(docs.items()))
        self.revision = changes.revision

    def _slot(self, id_: str) -> int:
        slot = self.slots.get(id_)
        if slot is None:
            slot = self.slots[id_] = len(self.ids)
            self.ids.append(id_)
            for column in self._columns():
                column.reserve(slot + 1)
        return slot

    def _columns(self) -> tuple[_Column, ...]:
        return (
            self._present,
            self._status,
            self._kind,
            self._user,
            self._agent,
            self._session,
            self._expires,
            self._valid_from,
            self._valid_to,
            self._has_vector,
            self._speaker,
            self._role,
        )

    def _code(self, value: str | None) -> int:
        if value is None:
            return -1
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._codes)
            self._named.append(value)
        return code

    def _set_row(self, slot: int, row: IndexRow) -> None:
        self._present.data[slot] = True
        turn = row.source == "message"
        self._speaker.data[slot] = self._code(row.speaker) if turn else -1
        said = (row.speaker or "").strip().casefold() if turn else ""
        self._role.data[slot] = 0 if said not in ROLES else 1 if said in USER_ROLES else 2
        self._status.data[slot] = self._code(row.status)
        self._kind.data[slot] = self._code(row.kind)
        self._user.data[slot] = self._code(row.user)
        self._agent.data[slot] = self._code(row.agent)
        self._session.data[slot] = self._code(row.session)
        if row.expires_at is None:
            self._expires.data[slot] = np.inf
        else:
            self._expires.data[slot] = row.expires_at
            self._expiring = True
        self._valid_from.data[slot] = row.valid_from
        if row.valid_to is None:
            self._valid_to.data[slot] = np.inf
        else:
            self._valid_to.data[slot] = row.valid_to
            self._ending = True
        if row.vector is not None:
            if self._vectors is None:
                self._vectors = Vectors(len(row.vector))
            if len(row.vector) == self._vectors.dimension:
                self._vectors.set(slot, row.vector)
                self._has_vector.data[slot] = True

    # -- conversation neighbours ----------------------------------------------------------
    def _join_session(self, slot: int, key: tuple[str | None, str], order: int) -> Sequence[int]:
        self._around.clear()
        turns = self._sessions.setdefault(key, [])
        at = bisect.bisect_left(turns, (order, slot))
        turns.insert(at, (order, slot))
        self._turn[slot] = (key, order)
        return [slot, *self.neighbours(slot)]

    def _leave_session(self, slot: int) -> Sequence[int]:
        """Take a turn out of its session; returns the turns whose documents change."""
        if slot not in self._turn:
            return []
        around = self.neighbours(slot)
        self._around.clear()
        key, order = self._turn.pop(slot)
        turns = self._sessions[key]
        turns.pop(bisect.bisect_left(turns, (order, slot)))
        if not turns:
            del self._sessions[key]
        return around

    def neighbours(self, slot: int) -> tuple[int, ...]:
        """The turns before and after a turn in its session (none for other memories)."""
        cached = self._around.get(slot)
        if cached is not None:
            return cached
        found = self._turn.get(slot)
        if found is None:
            return ()
        key, order = found
        turns = self._sessions[key]
        at = bisect.bisect_left(turns, (order, slot))
        around = tuple(turns[j][1] for j in (at - 1, at + 1) if 0 <= j < len(turns))
        self._around[slot] = around
        return around

    def session_of(self, slot: int) -> tuple[str | None, str] | None:
        """The (user, session) of a conversation turn or session summary; None for others."""
        found = self._turn.get(slot)
        return self._summary.get(slot) if found is None else found[0]

    def _document(self, slot: int) -> list[str]:
        tokens = list(self._own[slot])
        if self.with_neighbours:
            for n in self.neighbours(slot):
                tokens.extend(self._said.get(n, ()))
        return tokens

    def own_share(self, tokens: Sequence[str], slots: Sequence[int]) -> dict[int, float]:
        """How much of the query each memory's own words hold (``BM25Index.coverage``): a
        turn's own text — not its speaker's name, nor the neighbours it is indexed with."""
        vocab = self.lexical.vocab
        held = []
        for s in slots:
            if s not in self._said:
                held.append(self.lexical.terms_of(s))
                continue
            code = int(self._speaker.data[s])
            speaker = self._named[code] if code >= 0 else None  # said first: "speaker: text"
            skip = len(self.tokenize(f"{speaker}:")) if speaker else 0
            held.append(frozenset(vocab[t] for t in self._said[s][skip:] if t in vocab))
        return dict(zip(slots, self.lexical.coverage(tokens, held), strict=True))

    def roles(self, mask: np.ndarray) -> tuple[np.ndarray, float]:
        """Each slot's chat role (``_role``), and the share of the allowed slots that are
        turns of a user–assistant conversation."""
        role = self._role.data[: len(mask)]
        allowed = int(mask.sum())
        return role, float((role[mask] > 0).sum() / allowed) if allowed else 0.0

    def boost_window(
        self, fused: dict[int, float], mask: np.ndarray, start: datetime, end: datetime, w: float
    ) -> None:
        """Add ``w`` to the candidates in ``fused`` whose valid time starts in [start, end)."""
        lo, hi = start.timestamp(), end.timestamp()
        starts = self._valid_from.data
        for slot in fused:
            if mask[slot] and lo <= starts[slot] < hi:
                fused[slot] += w

    def valid_span(self, slots: Sequence[int]) -> tuple[float, float | None]:
        """The earliest start and the latest end (None: one has none) of these slots' valid
        times, as POSIX timestamps."""
        chosen = np.asarray(slots, dtype=np.int64)
        end = float(self._valid_to.data[chosen].max())
        return float(self._valid_from.data[chosen].min()), None if np.isinf(end) else end

    # -- reading --------------------------------------------------------------------------
    def mask(
        self,
        filters: Filters,
        now: datetime,
        match_ids: Callable[[], list[str]],
        *,
        valid_at: datetime | None = None,
        ended: bool = False,
        only: Sequence[str] | None = None,
    ) -> np.ndarray:
        """The slots ``filters`` allow (from the columns here, or from the store's answer),
        on the valid timeline: true at ``valid_at`` when given; else not ended by ``now``
        (unless ``ended``). ``only``: among these ids."""
        mask = self._filter_mask(filters, now, match_ids)
        n = len(mask)
        if valid_at is not None:
            moment = valid_at.timestamp()
            mask = mask & (self._valid_from.data[:n] <= moment) & (self._valid_to.data[:n] > moment)
        elif not ended and self._ending:
            mask = mask & (self._valid_to.data[:n] > now.timestamp())
        if only is not None:
            chosen = np.zeros(n, dtype=bool)
            chosen[[self.slots[i] for i in only if i in self.slots]] = True
            mask = mask & chosen
        return mask

    def _filter_mask(
        self, filters: Filters, now: datetime, match_ids: Callable[[], list[str]]
    ) -> np.ndarray:
        n = self.size
        if not _is_simple(filters):
            mask = np.zeros(n, dtype=bool)
            slots = [self.slots[i] for i in match_ids() if i in self.slots]
            mask[slots] = True
            return mask & self._present.data[:n]
        key = (
            tuple(s.value for s in filters.status),
            filters.user,
            filters.agent,
            filters.session,
            filters.kind,
        )
        cached = self._masks.get(key)
        if cached is None:
            cached = self._column_mask(filters)
            if len(self._masks) >= 64:
                self._masks.clear()
            self._masks[key] = cached
        mask = cached
        if filters.include_expired or not self._expiring:
            return mask
        return mask & (self._expires.data[:n] > now.timestamp())

    def _column_mask(self, filters: Filters) -> np.ndarray:
        n = self.size
        mask = self._present.data[:n].copy()
        wanted = [self._codes.get(s.value, -2) for s in filters.status]
        mask &= np.isin(self._status.data[:n], wanted)
        for column, value in (
            (self._user, filters.user),
            (self._agent, filters.agent),
            (self._session, filters.session),
            (self._kind, filters.kind.value if filters.kind else None),
        ):
            if value is not None:
                mask &= column.data[:n] == self._codes.get(value, -2)
        return mask

    def lexical_top(
        self, tokens: Sequence[str], mask: np.ndarray, pool: int
    ) -> list[tuple[int, float]]:
        """The ``pool`` best BM25 matches among the masked slots (only matching slots are
        ranked, so the cost follows the query's postings, not the cube)."""
        scores = self.lexical.scores(tokens, len(mask))
        matched = np.flatnonzero(scores > 0)
        matched = matched[mask[matched]]
        found = scores[matched]
        return [(int(matched[i]), float(found[i])) for i in top(found, pool)]

    def similarity(self, vector: np.ndarray, slots: Sequence[int]) -> dict[int, float]:
        """Inner products of ``vector`` with these slots' vectors (slots without one left out)."""
        if self._vectors is None or not slots:
            return {}
        chosen = [s for s in slots if s < len(self._has_vector.data) and self._has_vector.data[s]]
        if not chosen:
            return {}
        scores = self._vectors.scores(vector, np.asarray(chosen, dtype=np.int64))
        return {slot: float(score) for slot, score in zip(chosen, scores, strict=True)}

    def dense_top(self, vector: np.ndarray, mask: np.ndarray, pool: int) -> list[tuple[int, float]]:
        """Exact inner products over the masked slots that have a vector."""
        if self._vectors is None:
            return []
        n = len(mask)
        allowed = mask & self._has_vector.data[:n]
        count = int(allowed.sum())
        if count == 0:
            return []
        if count < n // 2:
            slots = np.flatnonzero(allowed)
            scores = self._vectors.scores(vector, slots)
            return [(int(slots[i]), float(scores[i])) for i in top(scores, pool)]
        scores = self._vectors.scores(vector, n=n)
        scores[~allowed] = -np.inf
        return [(int(i), float(scores[i])) for i in top(scores, pool)]


def _is_simple(filters: Filters) -> bool:
    """Filters answered from the columns here (scope, status, kind, expiry); tags, times,
    metadata, namespaces and values are asked of the store."""
    return not (
        filters.tags
        or filters.after
        or filters.before
        or filters.metadata
        or filters.namespace is not None
        or filters.value
    )


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest finite scores, best first (ties keep position order)."""
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    best = np.sort(np.argpartition(-scores, n - 1)[:n])  # position order for the ties
    return best[np.argsort(-scores[best], kind="stable")]
