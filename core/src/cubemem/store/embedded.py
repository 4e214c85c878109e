"""The default engine: SQLite in WAL mode holds the truth, a Chroma PersistentClient the index.

Each row keeps its vector too, so the index can be rebuilt without the model and a filtered
search can score a small subset exactly instead of asking the index for an allow-list.

SQLite serves many processes; Chroma's embedded client serves one. So one process at a time is
the *index owner* (it holds ``index.lock``): it opens Chroma and indexes. Every other process
is a follower: it writes rows (with their vectors) and notes them in ``pending_index``, which
the owner drains before its next search; a follower's dense search scores the rows' vectors
exactly. A follower becomes the owner when the lock frees up.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.embed import Embedder
from cubemem.errors import BackendUnavailableError, ConflictError, CubeCorruptError
from cubemem.model import Filters, MemoryItem, decode_namespace
from cubemem.sqlite import immediate
from cubemem.store import filters as filters_sql
from cubemem.store.base import Changes, Embedding, EmbedFn, Repair
from cubemem.store.chroma_files import SUMS, index_sound, open_index, write_sums
from cubemem.store.sqlite_rows import (
    FEED_ALL,
    FEED_SINCE,
    INDEX_PAGE,
    INSERT,
    ITEM_JSON_EXCLUDE,
    REVISE,
    SCHEMA,
    bump,
    feed_row,
    item_of,
    json_time,
    migrations,
    revise_values,
    row_values,
    vector_blob,
)

__all__ = ["SUMS", "EmbeddedStore"]

log = logging.getLogger(__name__)

_SQL = filters_sql.SQLite()


def _where(filters: Filters, now: datetime) -> tuple[str, list[Any]]:
    """Translate ``Filters`` into a SQL condition over ``memories m``."""
    return filters_sql.where(filters, now, _SQL)


class EmbeddedStore:
    """SQLite (WAL, synchronous=FULL) + Chroma ``PersistentClient`` in one cube folder."""

    def __init__(self, path: Path, embedder: Embedder, *, busy_timeout_s: float = 30.0) -> None:
        self._path = Path(path)
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._db = sqlite3.connect(
                self._path / "memories.sqlite3",
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(f"BEGIN IMMEDIATE;{migrations(self._db)}{SCHEMA}COMMIT;")
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, busy, unopenable
                raise BackendUnavailableError(
                    f"cannot open SQLite store in {self._path}: {exc}"
                ) from exc
            raise CubeCorruptError(
                f"{self._path / 'memories.sqlite3'} is not a readable database ({exc}); nothing "
                "was changed — restore it from a backup or an export"
            ) from exc
        except sqlite3.Error as exc:
            raise BackendUnavailableError(
                f"cannot open SQLite store in {self._path}: {exc}"
            ) from exc
        self._embedder = embedder
        self._embed_fn: EmbedFn | None = None
        self._lock_fd: int | None = None
        self._client: Any = None
        self._collection: Any = None
        self._max_batch = 1
        self._exact: tuple[int, list[str], np.ndarray] | None = None
        self._try_own_index()

    # -- index ownership ------------------------------------------------------------------
    @property
    def owns_index(self) -> bool:
        """Whether this process holds the cube's vector index (see the module docstring)."""
        return self._collection is not None

    @property
    def remote_index(self) -> bool:
        return False

    def _try_own_index(self) -> bool:
        if self._collection is not None:
            return True
        fd = os.open(self._path / "index.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            index = self._path / "index"
            if not index_sound(index, self._embedder.dimension):
                # derived data, never trusted: set the damaged files aside, rebuild from rows
                aside = self._path / f"index.broken-{int(time.time())}"
                log.warning("vector index of %s is damaged; rebuilt from the rows", self._path)
                shutil.rmtree(aside, ignore_errors=True)
                index.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            self._client, self._collection = open_index(index, self._embedder)
            (index / SUMS).unlink(missing_ok=True)  # open: the index changes from here on
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._max_batch = max(1, self._client.get_max_batch_size())
        self._exact = None
        return True

    def sync_index(self) -> int:
        """Owner: index what followers wrote. Follower: take over the index if it is free.

        Returns how many pending changes were applied.
        """
        with self._lock:
            if self._collection is None:
                if not self._try_own_index():
                    return 0
                if self._embed_fn is not None:
                    self.reconcile(self._embed_fn)
            applied = 0
            while True:
                rows = self._query("SELECT id, op FROM pending_index LIMIT ?", (INDEX_PAGE,))
                if not rows:
                    return applied
                purged = [id_ for id_, op in rows if op == "purge"]
                if purged:
                    self._collection.delete(ids=purged)
                upserts = [id_ for id_, op in rows if op != "purge"]
                self._index(self._stored_embeddings(upserts))
                with self._transaction() as db:
                    db.executemany(
                        "DELETE FROM pending_index WHERE id = ? AND op = ?",
                        [tuple(r) for r in rows],
                    )
                applied += len(rows)

    # -- transactions ---------------------------------------------------------------------
    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db, self._lock, f"the cube database {self._path}")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- primitives -----------------------------------------------------------------------
    def insert(
        self,
        items: Sequence[MemoryItem],
        embeddings: Mapping[str, Embedding],
        history: Sequence[MemoryItem] = (),
    ) -> list[str]:
        if not items:
            return []
        unique = list({i.id: i for i in items}.values())
        with self._lock:  # the index is written in commit order, so the last commit wins
            with self._transaction() as db:
                present = self._present(db, [i.id for i in unique])
                new = [i for i in unique if i.id not in present]
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
                self._write_tags(db, new)
                self._note_pending(db, [i.id for i in new if i.id in embeddings])
            # The rows are durable now; a crash before the index write is repaired on open.
            self._index_now({i.id: embeddings[i.id] for i in new if i.id in embeddings})
        return [i.id for i in new]

    def revise(
        self, revisions: Sequence[tuple[MemoryItem, int]], embeddings: Mapping[str, Embedding]
    ) -> None:
        if not revisions:
            return
        for item, expected in revisions:
            if item.version <= expected:
                raise ValueError(f"revision of {item.id} must raise its version past {expected}")
        with self._lock:
            with self._transaction() as db:
                seq = bump(db)
                stale = [
                    item.id
                    for item, expected in revisions
                    if not db.execute(
                        REVISE,
                        (*revise_values(item, embeddings.get(item.id), seq), item.id, expected),
                    ).rowcount
                ]
                if stale:  # raising rolls the whole transaction back
                    raise ConflictError(
                        f"memories {stale} changed since they were read (or are gone); nothing "
                        "was written. Read them again and retry",
                        stale,
                    )
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
                    raise ConflictError(
                        f"a version of {[i.id for i in items]} is already in the history; "
                        "nothing was written. Read the memories again and retry",
                        [i.id for i in items],
                    ) from None
                self._write_tags(db, items)
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

    @staticmethod
    def _present(db: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            found.update(
                row[0]
                for row in db.execute(
                    f"SELECT id FROM memories WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
            )
        return found

    @staticmethod
    def _write_tags(db: sqlite3.Connection, items: Sequence[MemoryItem]) -> None:
        for item in items:
            db.execute("DELETE FROM tags WHERE id = ?", (item.id,))
            db.executemany(
                "INSERT OR IGNORE INTO tags (tag, id) VALUES (?, ?)",
                [(tag, item.id) for tag in item.tags],
            )

    def _note_pending(self, db: sqlite3.Connection, ids: Sequence[str]) -> None:
        """A follower leaves new vectors for the index owner to pick up."""
        if self._collection is None and ids:
            db.executemany(
                "INSERT OR REPLACE INTO pending_index (id, op) VALUES (?, 'upsert')",
                [(i,) for i in ids],
            )

    def _index_now(self, embeddings: Mapping[str, Embedding]) -> None:
        """Index rows just committed. The rows are the truth and are already durable, so an
        index failure here (a full disk) does not fail the write — which would make a caller
        retry and duplicate it: the ids are noted for the next sync, and the open after that
        repairs whatever is still missing."""
        if self._collection is None or not embeddings:
            return
        try:
            self._index(embeddings)
        except Exception as exc:
            log.warning(
                "rows of %d memories are stored but their index write failed (%s); the index "
                "catches up at the next sync or open",
                len(embeddings),
                exc,
            )
            try:
                with self._transaction() as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO pending_index (id, op) VALUES (?, 'upsert')",
                        [(i,) for i in embeddings],
                    )
            except Exception as again:  # the disk is still full: reconcile on open finds them
                log.warning("could not note the unindexed rows either: %s", again)

    def _index(self, embeddings: Mapping[str, Embedding]) -> None:
        ids = list(embeddings)
        for start in range(0, len(ids), self._max_batch):
            chunk = ids[start : start + self._max_batch]
            self._collection.upsert(
                ids=chunk,
                embeddings=np.stack([embeddings[i].vector for i in chunk]),
                metadatas=[{"h": embeddings[i].digest} for i in chunk],
            )

    def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        found: dict[str, MemoryItem] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self._query(
                "SELECT id, data, hits, last_access FROM memories "
                f"WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            found.update({row[0]: item_of(*row[1:]) for row in rows})
        return [found[i] for i in ids if i in found]

    def versions(self, id: str) -> list[MemoryItem]:
        rows = self._query("SELECT data FROM versions WHERE id = ? ORDER BY version", (id,))
        return [MemoryItem.model_validate_json(row[0]) for row in rows]

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

    def nearest(
        self, vector: np.ndarray, k: int, allowed: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        n = k if allowed is None else min(k, len(allowed))
        if n <= 0:
            return []
        self.sync_index()
        if self._collection is None:
            return self._exact_nearest(vector, n, allowed)
        result = self._collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=n,
            ids=None if allowed is None else list(allowed),
            include=["distances"],
        )
        return [
            (id_, 1.0 - float(dist))
            for id_, dist in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def _exact_nearest(
        self, vector: np.ndarray, n: int, allowed: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        """A follower's dense search: every row's stored vector, cached per revision."""
        revision = self.revision()
        if self._exact is None or self._exact[0] != revision:
            rows = self._query("SELECT id, vector FROM memories WHERE vector IS NOT NULL")
            ids = [row[0] for row in rows]
            matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
            self._exact = (revision, ids, matrix.reshape(len(ids), -1))
        _, ids, matrix = self._exact
        if not ids:
            return []
        scores = np.einsum("ij,j->i", matrix, np.asarray(vector, dtype=np.float32))
        if allowed is not None:
            keep = set(allowed)
            scores = np.where([i in keep for i in ids], scores, -np.inf)
        top = np.argsort(-scores, kind="stable")[:n]
        return [(ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        found: list[str] = []
        rows: list[bytes] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            for id_, blob in self._query(
                "SELECT id, vector FROM memories "
                f"WHERE vector IS NOT NULL AND id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ):
                found.append(id_)
                rows.append(blob)
        matrix = np.frombuffer(b"".join(rows), dtype=np.float32)
        return found, matrix.reshape(len(found), -1) if found else matrix.reshape(0, 0)

    def touch(self, ids: Sequence[str], at: datetime) -> None:
        if not ids:
            return
        with self._transaction() as db:
            db.executemany(
                "UPDATE memories SET hits = hits + 1, last_access = ? WHERE id = ?",
                [(at.timestamp(), id_) for id_ in ids],
            )

    def purge(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._transaction() as db:
            for table in ("memories", "tags", "versions"):
                db.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in ids])
            if self._collection is None:
                db.executemany(
                    "INSERT OR REPLACE INTO pending_index (id, op) VALUES (?, 'purge')",
                    [(i,) for i in ids],
                )
            seq = bump(db)
            db.executemany("INSERT INTO purged (seq, id) VALUES (?, ?)", [(seq, i) for i in ids])
        if self._collection is not None:
            try:
                self._collection.delete(ids=list(ids))
            except Exception as exc:  # the rows are gone; open drops the orphaned vectors
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
        with self._lock:  # one read transaction: the revision and the rows agree
            self._db.execute("BEGIN")
            try:
                revision = int(
                    self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0]
                )
                if revision == since:
                    return Changes(revision, [], [])
                if since < 0:
                    rows = [feed_row(r) for r in self._db.execute(FEED_ALL)]
                else:
                    found = self._db.execute(FEED_SINCE, (since,)).fetchall()
                    rows = [feed_row(r) for r in sorted(found, key=lambda r: r[1])]
                purged = [
                    r[0]
                    for r in self._db.execute(
                        "SELECT id FROM purged WHERE seq > ? ORDER BY seq", (since,)
                    )
                ]
            finally:
                self._db.execute("COMMIT")
        return Changes(revision, rows, purged)

    def reconcile(self, embed: EmbedFn) -> Repair:
        self._embed_fn = embed
        if self._collection is None:
            return Repair()  # the owner repairs the index; rows are the truth either way
        self._query("DELETE FROM pending_index")  # a full reconcile covers them
        truth = dict(self._query("SELECT id, digest FROM memories"))
        digests = self._indexed_digests()
        orphans = [id_ for id_ in digests if id_ not in truth]
        stale = [
            id_ for id_, digest in truth.items() if digest is None or digests.get(id_) != digest
        ]
        for start in range(0, len(orphans), self._max_batch):
            self._collection.delete(ids=orphans[start : start + self._max_batch])
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
            self._index(embeddings)
        if orphans or stale:
            log.warning(
                "repaired index of %s: %d re-embedded, %d orphans removed",
                self._path,
                len(stale),
                len(orphans),
            )
        return Repair(reindexed=stale, orphans_removed=orphans)

    def _stored_embeddings(self, ids: Sequence[str]) -> dict[str, Embedding]:
        """The vectors (and digests) the rows hold, for re-indexing without the model."""
        digests = dict(self._query("SELECT id, digest FROM memories WHERE digest IS NOT NULL"))
        found, matrix = self.vectors([i for i in ids if i in digests])
        return {id_: Embedding(v, digests[id_]) for id_, v in zip(found, matrix, strict=True)}

    def _indexed_digests(self) -> dict[str, str | None]:
        """Every vector's id and text digest, read a page at a time (Chroma caps SQL variables)."""
        digests: dict[str, str | None] = {}
        while True:
            page = self._collection.get(
                include=["metadatas"], limit=INDEX_PAGE, offset=len(digests)
            )
            for id_, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
                digests[id_] = (meta or {}).get("h")
            if len(page["ids"]) < INDEX_PAGE:
                return digests

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
            if self._client is not None:
                self._client.close()
                try:  # a clean close vouches for the index files the next open will load
                    write_sums(self._path / "index")
                except OSError as exc:
                    log.warning("could not record the index checksums of %s: %s", self._path, exc)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the index lock
