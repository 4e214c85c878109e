"""The owner's upkeep of an embedded cube's derived vector index (``EmbeddedStore`` inherits
it): applying what followers wrote, rebuilding it after a forget so deleted vectors leave its
files, and reconciling it with the rows at open. Rows are the truth; the index is rebuilt from
the vectors they keep."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.model import MemoryItem
from cubemem.store.base import Embedding, EmbedFn, Repair
from cubemem.store.chroma_files import ChromaIndex
from cubemem.store.sqlite_rows import INDEX_PAGE, PENDING_COMPACT, vector_blob

log = logging.getLogger("cubemem.store.embedded")


class IndexUpkeep:
    """What the process that owns the index does to keep it equal to the rows."""

    _path: Path
    _db: sqlite3.Connection
    _lock: threading.RLock
    _index: ChromaIndex
    _embed_fn: EmbedFn | None
    _exact: tuple[int, list[str], np.ndarray] | None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        raise NotImplementedError

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        raise NotImplementedError

    def sync_index(self) -> int:
        """Owner: index what followers wrote. Follower: take over the index if it is free.

        Returns how many pending changes were applied.
        """
        with self._lock:
            if not self._index.owned:
                if not self._index.try_own():
                    return 0
                self._exact = None
                if self._embed_fn is not None:
                    self.reconcile(self._embed_fn)
            applied = 0
            while True:
                rows = self._query("SELECT id, op FROM pending_index LIMIT ?", (INDEX_PAGE,))
                if not rows:
                    return applied
                purged = [id_ for id_, op in rows if op == "purge"]
                if purged:
                    self._index.delete(purged)
                upserts = [id_ for id_, op in rows if op == "upsert"]
                self._index.upsert(self._stored_embeddings(upserts))
                if any(op == "compact" for _, op in rows):  # a follower forgot something
                    self._rebuild_index()
                with self._transaction() as db:
                    db.executemany(
                        "DELETE FROM pending_index WHERE id = ? AND op = ?",
                        [tuple(r) for r in rows],
                    )
                applied += len(rows)

    def vacuum_rows(self) -> None:
        """Rewrite the rows' database into fresh pages (``VACUUM``) and empty its write-ahead
        log: ``secure_delete`` overwrites a deleted row, but copies that b-tree rebalancing
        left in pages' free space survived it (issue 43: whole forgotten rows, readable)."""
        try:
            with self._lock:  # waits out another process's write (busy_timeout), as any write
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:  # another process holds the file too long
            log.warning("could not vacuum %s after a forget: %s", self._path, exc)

    def compact_vectors(self) -> None:
        """Chroma's HNSW files keep a deleted vector (only marked deleted) until they are
        rebuilt: the owner rebuilds the index from the rows' vectors now; a follower asks the
        owner to, at its next sync (or the next open). The rows' file is vacuumed first."""
        self.vacuum_rows()
        with self._lock:
            if self._index.owned:
                self._rebuild_index()
            else:
                with self._transaction() as db:
                    db.execute(PENDING_COMPACT)

    def _rebuild_index(self) -> None:
        digests = dict(self._query("SELECT id, digest FROM memories WHERE digest IS NOT NULL"))
        ids = list(digests)

        def pages() -> Iterator[dict[str, Embedding]]:
            for start in range(0, len(ids), INDEX_PAGE):
                found, matrix = self.vectors(ids[start : start + INDEX_PAGE])
                yield {i: Embedding(v, digests[i]) for i, v in zip(found, matrix, strict=True)}

        self._index.rebuild(pages())

    def reconcile(self, embed: EmbedFn) -> Repair:
        self._embed_fn = embed
        if not self._index.owned:
            return Repair()  # the owner repairs the index; rows are the truth either way
        if getattr(self._index, "vouched", False):
            # closed cleanly and unchanged since: equal to the rows but for the writes other
            # processes noted in pending_index (in the transaction of each write), which the
            # next sync applies. A full diff reads every row (tens of seconds at 10^6); it runs
            # after a crash, or when a failed index write kept the close from vouching.
            self._index.vouched = False
            return Repair()
        self._query("DELETE FROM pending_index")  # a full reconcile covers them
        orphans, stale = self._index.diff(dict(self._query("SELECT id, digest FROM memories")))
        self._index.delete(orphans)
        if stale:
            embeddings = self._stored_embeddings(stale)
            missing = self.get([i for i in stale if i not in embeddings])
            if missing:
                fresh = embed(missing)
                with self._transaction() as db:
                    db.executemany(
                        "UPDATE memories SET digest = ?, vector = ? WHERE id = ?",
                        [(e.digest, vector_blob(e.vector), id_) for id_, e in fresh.items()],
                    )
                embeddings.update(fresh)
            self._index.upsert(embeddings)
        if orphans or stale:
            note = "repaired index of %s: %d re-embedded, %d orphans removed"
            log.warning(note, self._path, len(stale), len(orphans))
        return Repair(reindexed=stale, orphans_removed=orphans)

    def _stored_embeddings(self, ids: Sequence[str]) -> dict[str, Embedding]:
        """The vectors (and digests) the rows hold, for re-indexing without the model."""
        digests = dict(self._query("SELECT id, digest FROM memories WHERE digest IS NOT NULL"))
        found, matrix = self.vectors([i for i in ids if i in digests])
        return {id_: Embedding(v, digests[id_]) for id_, v in zip(found, matrix, strict=True)}
