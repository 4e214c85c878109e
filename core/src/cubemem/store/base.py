"""The storage protocol: a handful of primitives every engine implements.

Policy (validation, fusion, filters' meaning, what to retry) lives above the engine in
``cubemem.ops`` and ``cubemem.retrieve``; an engine only persists rows, keeps their version
snapshots, evaluates ``Filters`` and answers nearest-neighbour queries. The conformance
suite in ``tests/core/test_store_conformance.py`` runs against every engine.

Writes are versioned. ``insert`` only creates rows; ``revise`` replaces a row only where it
is still at the version the caller read (a compare-and-set, refused whole with
``ConflictError``); history is append-only, one snapshot per version, never replaced; usage
counters change only by ``touch`` increments. So two writers can never undo each other's edit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from cubemem.errors import ConflictError
from cubemem.model import Filters, MemoryItem, Usage
from cubemem.model.graph import EntityLink


class Embedding(NamedTuple):
    """A vector and the digest of the text it was computed from (to detect stale vectors)."""

    vector: np.ndarray
    digest: str


@dataclass(frozen=True)
class Repair:
    """What ``reconcile`` fixed: rows re-indexed (vector missing or stale) and orphans removed."""

    reindexed: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.reindexed or self.orphans_removed)


class IndexRow(NamedTuple):
    """What the search indexes keep of a row: its scope and lifecycle for filtering, the text
    fields the lexical index reads, and its vector."""

    id: str
    order: int
    """Insertion order (turns of a session are neighbours in this order)."""
    status: str
    kind: str
    user: str | None
    agent: str | None
    session: str | None
    expires_at: float | None
    """POSIX timestamp."""
    source: str
    speaker: str | None
    occurred_at: datetime | None
    content: str
    context: str | None
    valid_from: float
    """POSIX timestamp: the start of its valid time (``MemoryItem.valid_since``)."""
    valid_to: float | None
    """POSIX timestamp: the end of its valid time (None: still true)."""
    triple: tuple[str | None, str | None, str | None] | None
    """An extracted fact's (subject, relation, object) from its metadata (None otherwise)."""
    vector: np.ndarray | None

    @classmethod
    def from_feed(cls, row: Sequence[Any], vector: np.ndarray | None) -> IndexRow:
        """A change-feed row: the fields in this order, then ``valid_from``, ``valid_to`` and
        ``created_at`` as ISO text, the metadata's subject, relation and object, then the
        vector (last) decoded by the engine."""
        occurred = None if row[10] is None else datetime.fromisoformat(row[10])
        valid_from, valid_to, created = row[13], row[14], row[15]
        start = (
            datetime.fromisoformat(valid_from).timestamp()
            if valid_from is not None
            else (occurred or datetime.fromisoformat(created)).timestamp()
        )
        end = None if valid_to is None else datetime.fromisoformat(valid_to).timestamp()
        said = tuple(v if isinstance(v, str) else None for v in row[16:19])
        triple = said if row[8] == "extract" and any(said) else None
        return cls._make([*row[:10], occurred, *row[11:13], start, end, triple, vector])


@dataclass(frozen=True)
class Changes:
    """What changed after a revision: the current form of every row written since (inserted,
    revised, status or expiry changed), and the ids purged since."""

    revision: int
    rows: list[IndexRow]
    purged: list[str]


EmbedFn = Callable[[list[MemoryItem]], Mapping[str, Embedding]]
Items = Sequence[MemoryItem]
Embeddings = Mapping[str, Embedding]
Revisions = Sequence[tuple[MemoryItem, int]]
Allowed = Sequence[str] | None
"""The ids a nearest-neighbour query may return (None: any)."""
Scored = list[tuple[str, float]]
"""(id, score) pairs, best first."""


def wanted(k: int, allowed: Allowed) -> int:
    """How many neighbours a query can have: ``k``, or fewer ids if fewer are allowed."""
    return k if allowed is None else min(k, len(allowed))


def stale(ids: list[str]) -> ConflictError:
    """What ``revise`` raises when rows moved past the version the caller read."""
    return ConflictError(
        f"memories {ids} changed since they were read (or are gone); nothing was written. "
        "Read them again and retry",
        ids,
    )


def in_history(ids: list[str]) -> ConflictError:
    """What ``revise`` raises when a version is already in the (append-only) history."""
    return ConflictError(
        f"a version of {ids} is already in the history; nothing was written. Read the "
        "memories again and retry",
        ids,
    )


def ts(value: datetime | None) -> float | None:
    """A datetime as the engines' columns hold it: a POSIX timestamp."""
    return None if value is None else value.timestamp()


def filter_columns(item: MemoryItem) -> tuple[Any, ...]:
    """The columns filters read: status, kind, user, agent, session."""
    scope = item.scope
    return item.status.value, item.kind.value, scope.user, scope.agent, scope.session


def with_usage(item: MemoryItem, hits: int, last_access: float | None) -> MemoryItem:
    """A row's item with its usage counters (kept apart from its versions)."""
    when = None if last_access is None else datetime.fromtimestamp(last_access, UTC)
    item.usage = Usage(hits=hits, last_access=when)
    return item


def current_at(rows: Sequence[tuple[str, int, str, Any]], at: datetime) -> list[Any]:
    """Of (id, version, updated_at as ISO text, data) rows, ordered by id then version, the
    data of each id's last version recorded at or before ``at``."""
    chosen: dict[str, Any] = {}
    for id_, _, recorded, data in rows:
        if datetime.fromisoformat(recorded) <= at:
            chosen[id_] = data
    return list(chosen.values())


def check_revisions(revisions: Revisions) -> None:
    """A revision must raise its item's version past the one it expects to replace."""
    for item, expected in revisions:
        if item.version <= expected:
            raise ValueError(f"revision of {item.id} must raise its version past {expected}")


@runtime_checkable
class MemoryStore(Protocol):
    """Rows are the truth; the vector index is derived from them and can be rebuilt."""

    def insert(self, items: Items, embeddings: Embeddings, history: Items = ()) -> list[str]:
        """Create rows (with their version snapshots) durably, then index ``embeddings``.

        Ids that already exist are left untouched and not returned, so a redelivered insert
        is harmless; the caller learns from the result which rows it created. ``history``
        holds older version snapshots to keep as well (import, compose).
        """
        ...

    def revise(self, revisions: Revisions, embeddings: Embeddings) -> None:
        """Replace each row that is still at the expected version with the new item (whose
        version must be higher) and append its snapshot to the history, all or nothing.

        Raises ``ConflictError`` naming the stale ids if any row moved on (or is gone); then
        nothing is written. Usage counters are kept; a missing embedding keeps the old vector.
        """
        ...

    def extend(self, changes: Sequence[tuple[str, int, datetime]]) -> list[str]:
        """Set the expiry of (id, version, expires_at) where the row is still at that version
        and active; not a new version (a sliding TTL). Returns the ids that changed."""
        ...

    def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        """The current rows for ``ids`` that exist, in the order asked."""
        ...

    def versions(self, id: str) -> list[MemoryItem]:
        """Every version snapshot of one memory, oldest first."""
        ...

    def versions_at(self, at: datetime) -> list[MemoryItem]:
        """Transaction time: each memory's version current at ``at`` — the last one recorded
        (``updated_at``) at or before it — for every memory recorded by then. Purged memories
        have no versions."""
        ...

    def select(
        self, filters: Filters, *, now: datetime, limit: int | None = None, offset: int = 0
    ) -> list[MemoryItem]:
        """Rows matching ``filters``, in insertion order."""
        ...

    def match_ids(self, filters: Filters, *, now: datetime) -> list[str]:
        """Ids of rows matching ``filters``, in insertion order."""
        ...

    def count(self, filters: Filters, *, now: datetime) -> int: ...

    def namespaces(self, filters: Filters, *, now: datetime) -> list[tuple[str, ...]]:
        """The distinct namespaces of keyed rows matching ``filters``, sorted."""
        ...

    def nearest(self, vector: np.ndarray, k: int, allowed: Allowed) -> Scored:
        """Up to ``k`` (id, inner product) pairs, best first, among ``allowed`` if given."""
        ...

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The stored vectors of those ``ids`` that have one: (found ids, matrix)."""
        ...

    def touch(self, ids: Sequence[str], at: datetime) -> None:
        """Count a retrieval hit on each of ``ids`` (an increment: never a row rewrite)."""
        ...

    def purge(self, ids: Sequence[str]) -> None:
        """Remove rows, their versions and vectors for good."""
        ...

    def compact_vectors(self) -> None:
        """Make purged rows and their vectors leave the files (the embedded engine vacuums
        its SQLite file; an index that only marks deletions is rebuilt from the rows); a
        forget calls it. Engines compacted by their own maintenance (PostgreSQL's VACUUM)
        do nothing."""
        ...

    def revision(self) -> int:
        """A number that changes whenever rows (or entity links) change (by any process)."""
        ...

    def link_entities(self, link: EntityLink) -> None:
        """Append a merge or split to the entity-resolution log (and bump the revision)."""
        ...

    def entity_links(self) -> list[EntityLink]:
        """The entity-resolution log, oldest first."""
        ...

    def changes(self, since: int) -> Changes:
        """Rows written and ids purged after revision ``since`` (``-1``: every row), read in
        one snapshot, with the revision they bring the reader to. Search indexes apply these
        to stay current without re-reading the cube."""
        ...

    @property
    def owns_index(self) -> bool:
        """Whether ``nearest`` is answered by a vector index in this process (otherwise by an
        exact scan, and callers holding the vectors may as well scan them themselves)."""
        ...

    @property
    def remote_index(self) -> bool:
        """Whether ``nearest`` costs a network round trip (PostgreSQL, a Chroma server): callers
        holding the vectors scan larger subsets themselves before asking it."""
        ...

    def reconcile(self, embed: EmbedFn) -> Repair:
        """Bring the index in line with the rows after a crash between the two writes.

        Rows keep their vectors, so the index is refilled from them; ``embed`` is called
        only for rows that were written without one.
        """
        ...

    def close(self) -> None: ...
