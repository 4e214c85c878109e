"""The default engine: SQLite in WAL mode holds the truth, a Chroma PersistentClient the index.

Each row keeps its vector too: the index is rebuilt without the model, small subsets scored.

SQLite serves many processes; Chroma's embedded client serves one. So one process at a time is
the *index owner* (it holds ``index.lock``): it opens Chroma and indexes. Every other process
is a follower: it writes rows (with their vectors) and notes them in ``pending_index``, which
the owner drains before its next search; a follower's dense search scores the rows' vectors
exactly. A follower becomes the owner when the lock frees up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.embed import Embedder
from cubemem.model import Filters, MemoryItem, decode_namespace
from cubemem.sqlite import immediate
from cubemem.store import filters as filters_sql
from cubemem.store.base import (
    Allowed,
    Changes,
    Embedding,
    Embeddings,
    EmbedFn,
    Items,
    Revisions,
    Scored,
    check_revisions,
    in_history,
    stale,
    wanted,
)
from cubemem.store.chroma_files import SUMS, ChromaIndex
from cubemem.store.index_upkeep import IndexUpkeep
from cubemem.store.links import SQLiteLinks
from cubemem.store.sqlite_rows import (
    INSERT,
    ITEM_JSON_EXCLUDE,
    PENDING_PURGE,
    PENDING_UPSERT,
    REVISE,
    TOUCH,
    bump,
    connect,
    item_of,
    json_time,
    present,
    read_changes,
    revise_values,
    row_values,
    stack_vectors,
    top_k,
    versions_at,
    write_tags,
)

__all__ = ["SUMS", "EmbeddedStore"]

log = logging.getLogger(__name__)

_SQL = filters_sql.SQLite()  # ``Filters`` as a SQL condition over ``memories m``


def _where(filters: Filters, now: datetime) -> tuple[str, list[Any]]:
    return filters_sql.where(filters, now, _SQL)


class EmbeddedStore(SQLiteLinks, IndexUpkeep):
    """SQLite (WAL, synchronous=FULL) + Chroma ``PersistentClient`` in one cube folder."""

    def __init__(
        self,
        path: Path,
        embedder: Embedder,
        *,
        busy_timeout_s: float = 30.0,
        open_index: bool = True,
    ) -> None:
        """``open_index=False``: start as a follower (Chroma is not loaded); the first search
        that needs the vector index takes it over if no other process holds it."""
        self._path = Path(path)
        self._lock = threading.RLock()
        self._closed = False
        self._db = connect(self._path / "memories.sqlite3", busy_timeout_s)
        self._embed_fn: EmbedFn | None = None
        self._index = self._open_index(embedder)
        self._exact: tuple[int, list[str], np.ndarray] | None = None
        if open_index:
            self._index.try_own()

    # -- index ownership ------------------------------------------------------------------
    def _open_index(self, embedder: Embedder) -> ChromaIndex:
        return ChromaIndex(self._path, embedder)

    @property
    def owns_index(self) -> bool:
        """Whether this process holds the cube's vector index (see the module docstring)."""
        return self._index.owned

    @property
    def remote_index(self) -> bool:
        return False

    # -- transactions ---------------------------------------------------------------------
    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db, self._lock, f"the cube database {self._path}")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _by_ids(self, sql: str, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """``sql`` with ``{ids}`` for the ids' placeholders, asked 500 ids at a time."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows += self._query(sql.format(ids=", ".join("?" * len(chunk))), chunk)
        return rows

    # -- primitives -----------------------------------------------------------------------
    def insert(self, items: Items, embeddings: Embeddings, history: Items = ()) -> list[str]:
        if not items:
            return []
        unique = list({i.id: i for i in items}.values())
        with self._lock:  # the index is written in commit order, so the last commit wins
            with self._transaction() as db:
                there = present(db, [i.id for i in unique])
                new = [i for i in unique if i.id not in there]
                new_ids = {i.id for i in new}
                snapshots = {(v.id, v.version): v for v in history if v.id in new_ids}
                snapshots.update({(i.id, i.version): i for i in new})
                db.executemany(
                    "INSERT INTO versions (id, version, data) VALUES (?, ?, ?)",
                    [
                        (id_, version, v.model_dump_json(exclude=ITEM_JSON_EXCLUDE))
                        for (id_, version), v in snapshots.items()
                    ],
                )
                seq = bump(db) if new else 0
                db.executemany(INSERT, [row_values(i, embeddings.get(i.id), seq) for i in new])
                write_tags(db, new)
                self._note_pending(db, [i.id for i in new if i.id in embeddings])
            # The rows are durable now; a crash before the index write is repaired on open.
            self._index_now({i.id: embeddings[i.id] for i in new if i.id in embeddings})
        return [i.id for i in new]

    def revise(self, revisions: Revisions, embeddings: Embeddings) -> None:
        if not revisions:
            return
        check_revisions(revisions)
        with self._lock:
            with self._transaction() as db:
                seq = bump(db)
                moved = [
                    item.id
                    for item, expected in revisions
                    if not db.execute(
                        REVISE,
                        (*revise_values(item, embeddings.get(item.id), seq), item.id, expected),
                    ).rowcount
                ]
                if moved:  # raising rolls the whole transaction back
                    raise stale(moved)
                items = [item for item, _ in revisions]
                try:
                    db.executemany(
                        "INSERT INTO versions (id, version, data) VALUES (?, ?, ?)",
                        [
                            (i.id, i.version, i.model_dump_json(exclude=ITEM_JSON_EXCLUDE))
                            for i in items
                        ],
                    )
                except sqlite3.IntegrityError:  # history is append-only: a version is written once
                    raise in_history([i.id for i in items]) from None
                write_tags(db, items)
                self._note_pending(db, [i.id for i in items if i.id in embeddings])
            self._index_now({i.id: embeddings[i.id] for i in items if i.id in embeddings})

    def extend(self, changes: Sequence[tuple[str, int, datetime]]) -> list[str]:
        done: list[str] = []
        with self._transaction() as db:
            seq = bump(db)  # taken back below when no row changed
            for id_, version, expires_at in changes:
                cur = db.execute(
                    "UPDATE memories SET expires_at = ?, data = json_set(data, '$.expires_at', ?), "
                    "seq = ? WHERE id = ? AND version = ? AND status = 'active'",
                    (expires_at.timestamp(), json_time(expires_at), seq, id_, version),
                )
                if cur.rowcount:
                    done.append(id_)
            if not done:
                db.execute("UPDATE meta SET value = value - 1 WHERE key = 'revision'")
        return done

    def _note_pending(self, db: sqlite3.Connection, ids: Sequence[str]) -> None:
        """A follower leaves new vectors for the index owner to pick up."""
        if not self._index.owned and ids:
            db.executemany(PENDING_UPSERT, [(i,) for i in ids])

    def _index_now(self, embeddings: Mapping[str, Embedding]) -> None:
        """Index rows just committed. The rows are the truth and are already durable, so an
        index failure here (a full disk) does not fail the write — which would make a caller
        retry and duplicate it: the ids are noted for the next sync, and the open after that
        repairs whatever is still missing."""
        if not self._index.owned or not embeddings:
            return
        try:
            self._index.upsert(embeddings)
        except Exception as exc:
            self._index.doubtful = True
            log.warning(
                "rows of %d memories are stored but their index write failed (%s); the index "
                "catches up at the next sync or open",
                len(embeddings),
                exc,
            )
            try:
                with self._transaction() as db:
                    db.executemany(PENDING_UPSERT, [(i,) for i in embeddings])
            except Exception as again:  # the disk is still full: reconcile on open finds them
                log.warning("could not note the unindexed rows either: %s", again)

    def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        sql = "SELECT id, data, hits, last_access FROM memories WHERE id IN ({ids})"
        found = {row[0]: item_of(*row[1:]) for row in self._by_ids(sql, list(dict.fromkeys(ids)))}
        return [found[i] for i in ids if i in found]

    def versions(self, id: str) -> list[MemoryItem]:
        rows = self._query("SELECT data FROM versions WHERE id = ? ORDER BY version", (id,))
        return [MemoryItem.model_validate_json(row[0]) for row in rows]

    def versions_at(self, at: datetime) -> list[MemoryItem]:
        with self._lock:
            return versions_at(self._db, at)

    def select(
        self, filters: Filters, *, now: datetime, limit: int | None = None, offset: int = 0
    ) -> list[MemoryItem]:
        where, params = _where(filters, now)
        rows = self._query(
            f"SELECT data, hits, last_access FROM memories m WHERE {where} "
            "ORDER BY m.rowid LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, offset],
        )
        return [item_of(*row) for row in rows]

    def match_ids(self, filters: Filters, *, now: datetime) -> list[str]:
        where, params = _where(filters, now)
        rows = self._query(f"SELECT m.id FROM memories m WHERE {where} ORDER BY m.rowid", params)
        return [row[0] for row in rows]

    def count(self, filters: Filters, *, now: datetime) -> int:
        where, params = _where(filters, now)
        return int(self._query(f"SELECT COUNT(*) FROM memories m WHERE {where}", params)[0][0])

    def nearest(self, vector: np.ndarray, k: int, allowed: Allowed) -> Scored:
        n = wanted(k, allowed)
        if n <= 0:
            return []
        self.sync_index()
        if not self._index.owned:
            return self._exact_nearest(vector, n, allowed)
        return self._index.nearest(vector, n, allowed)

    def _exact_nearest(
        self, vector: np.ndarray, n: int, allowed: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        """A follower's dense search: every row's stored vector, cached per revision."""
        revision = self.revision()
        if self._exact is None or self._exact[0] != revision:
            rows = self._query("SELECT id, vector FROM memories WHERE vector IS NOT NULL")
            self._exact = (revision, *stack_vectors(rows))
        _, ids, matrix = self._exact
        return top_k(ids, matrix, vector, n, allowed)

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        sql = "SELECT id, vector FROM memories WHERE vector IS NOT NULL AND id IN ({ids})"
        return stack_vectors(self._by_ids(sql, ids))

    def touch(self, ids: Sequence[str], at: datetime) -> None:
        """Usage counters are advisory: their commit does not wait for the disk (as on
        PostgreSQL, ``synchronous_commit = off``). A power cut may lose the last few counts,
        never a memory; the next durable commit syncs them too. With a sync, the commit was
        the slowest part of a search (p95 10 ms of a 29 ms LoCoMo search, one core)."""
        if ids:
            with self._lock:
                self._db.execute("PRAGMA synchronous=NORMAL")
                try:
                    with self._transaction() as db:
                        db.executemany(TOUCH, [(at.timestamp(), id_) for id_ in ids])
                finally:
                    self._db.execute("PRAGMA synchronous=FULL")

    def purge(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._transaction() as db:
            for table in ("memories", "tags", "versions"):
                db.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in ids])
            if not self._index.owned:
                db.executemany(PENDING_PURGE, [(i,) for i in ids])
            seq = bump(db)
            db.executemany("INSERT INTO purged (seq, id) VALUES (?, ?)", [(seq, i) for i in ids])
        if self._index.owned:
            try:
                self._index.delete(ids)
            except Exception as exc:  # the rows are gone; open drops the orphaned vectors
                self._index.doubtful = True
                log.warning("purged rows but not their index entries (%s); open repairs it", exc)

    def namespaces(self, filters: Filters, *, now: datetime) -> list[tuple[str, ...]]:
        where, params = _where(filters, now)
        rows = self._query(
            f"SELECT DISTINCT m.namespace FROM memories m WHERE {where} "
            "AND m.namespace IS NOT NULL ORDER BY m.namespace",
            params,
        )
        return [decode_namespace(row[0]) for row in rows]

    def revision(self) -> int:
        return int(self._query("SELECT value FROM meta WHERE key = 'revision'")[0][0])

    def changes(self, since: int) -> Changes:
        with self._lock:
            return read_changes(self._db, since)

    def close(self) -> None:
        """Release the database and the index; closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                # Best effort: optimize reads then writes statistics, and under WAL a writer in
                # another process can make that upgrade fail at once (SQLITE_BUSY_SNAPSHOT).
                self._db.execute("PRAGMA optimize")
            except sqlite3.OperationalError as exc:
                log.debug("skipped PRAGMA optimize on close of %s: %s", self._path, exc)
            self._db.close()
            self._index.close()
