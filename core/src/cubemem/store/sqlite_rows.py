"""The embedded engine's SQLite side: schema, statements, migrations, and a row's values
in and out."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_core import to_jsonable_python

from cubemem.errors import BackendUnavailableError, CubeCorruptError
from cubemem.model import MemoryItem, encode_namespace
from cubemem.store.base import (
    Changes,
    Embedding,
    IndexRow,
    current_at,
    filter_columns,
    ts,
    with_usage,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    agent_id TEXT,
    session_id TEXT,
    created_at REAL NOT NULL,
    event_at REAL NOT NULL,
    expires_at REAL,
    version INTEGER NOT NULL,
    digest TEXT,
    vector BLOB,
    hits INTEGER NOT NULL DEFAULT 0,
    last_access REAL,
    data TEXT NOT NULL,
    namespace TEXT,
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS memories_scope ON memories (user_id, agent_id, session_id);
DROP INDEX IF EXISTS memories_status;
CREATE INDEX IF NOT EXISTS memories_event ON memories (event_at);
CREATE INDEX IF NOT EXISTS memories_expires ON memories (expires_at);
CREATE INDEX IF NOT EXISTS memories_namespace ON memories (namespace) WHERE namespace IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (tag, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_id ON tags (id);
CREATE TABLE IF NOT EXISTS versions (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (id, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memories_seq ON memories (seq);
CREATE TABLE IF NOT EXISTS purged (seq INTEGER NOT NULL, id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS purged_seq ON purged (seq);
CREATE TABLE IF NOT EXISTS pending_index (id TEXT PRIMARY KEY, op TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entity_links (seq INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
"""

INSERT = """
INSERT INTO memories (id, status, kind, user_id, agent_id, session_id, created_at, event_at,
                      expires_at, version, digest, vector, hits, last_access, data, namespace, seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# A compare-and-set: only the version the writer read is replaced. Usage counters (hits,
# last_access) are not written: they belong to touch(), whose increments a revision keeps.
REVISE = """
UPDATE memories SET
    status = ?, kind = ?, user_id = ?, agent_id = ?, session_id = ?, created_at = ?,
    event_at = ?, expires_at = ?, version = ?, digest = COALESCE(?, digest),
    vector = COALESCE(?, vector), data = ?, namespace = ?, seq = ?
WHERE id = ? AND version = ?
"""

# Cubes made before keyed memories (namespace) or the change feed (seq) lack those columns.
MIGRATIONS = {
    "namespace": "ALTER TABLE memories ADD COLUMN namespace TEXT",
    "seq": "ALTER TABLE memories ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
}

# What the search indexes need of a row (see ``changes``), without parsing the item JSON.
FEED = """
SELECT m.id, m.rowid, m.status, m.kind, m.user_id, m.agent_id, m.session_id, m.expires_at,
       json_extract(m.data, '$.provenance.source'), json_extract(m.data, '$.provenance.speaker'),
       json_extract(m.data, '$.provenance.occurred_at'), json_extract(m.data, '$.content'),
       json_extract(m.data, '$.context'), json_extract(m.data, '$.valid_from'),
       json_extract(m.data, '$.valid_to'), json_extract(m.data, '$.provenance.created_at'),
       json_extract(m.data, '$.metadata.subject'), json_extract(m.data, '$.metadata.relation'),
       json_extract(m.data, '$.metadata.object'), m.vector
FROM memories m
"""
FEED_ALL = FEED + "ORDER BY m.rowid"
FEED_SINCE = FEED + "INDEXED BY memories_seq WHERE m.seq > ?"  # then sorted by rowid

VERSIONS_RECORDED = (
    "SELECT id, version, json_extract(data, '$.updated_at'), data FROM versions "
    "ORDER BY id, version"
)
ITEM_JSON_EXCLUDE = {"usage"}
INDEX_PAGE = 10_000
PENDING_UPSERT = "INSERT OR REPLACE INTO pending_index (id, op) VALUES (?, 'upsert')"
PENDING_PURGE = "INSERT OR REPLACE INTO pending_index (id, op) VALUES (?, 'purge')"
PENDING_COMPACT = "INSERT OR REPLACE INTO pending_index (id, op) VALUES ('', 'compact')"
TOUCH = "UPDATE memories SET hits = hits + 1, last_access = ? WHERE id = ?"


def row_values(item: MemoryItem, embedding: Embedding | None, seq: int) -> tuple[Any, ...]:
    """The INSERT parameters of a row."""
    fields = revise_values(item, embedding, seq)
    return (item.id, *fields[:-3], item.usage.hits, ts(item.usage.last_access), *fields[-3:])


def revise_values(item: MemoryItem, embedding: Embedding | None, seq: int) -> tuple[Any, ...]:
    """The REVISE parameters of a row, less the WHERE clause."""
    return (
        *filter_columns(item),
        ts(item.provenance.created_at),
        ts(item.event_time),
        ts(item.expires_at),
        item.version,
        embedding.digest if embedding else None,
        vector_blob(embedding.vector) if embedding else None,
        item.model_dump_json(exclude=ITEM_JSON_EXCLUDE),
        None if item.namespace is None else encode_namespace(item.namespace),
        seq,
    )


def json_time(value: datetime) -> str:
    """A datetime as the item JSON holds it (pydantic's ISO 8601 form)."""
    return str(to_jsonable_python(value))


def vector_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def item_of(data: str, hits: int, last_access: float | None) -> MemoryItem:
    return with_usage(MemoryItem.model_validate_json(data), hits, last_access)


def bump(db: sqlite3.Connection) -> int:
    """Advance the revision inside a write transaction; the rows it writes carry it as seq."""
    return int(
        db.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value"
        ).fetchone()[0]
    )


def versions_at(db: sqlite3.Connection, at: datetime) -> list[MemoryItem]:
    """Each memory's version current at ``at`` (``MemoryStore.versions_at``)."""
    chosen = current_at(db.execute(VERSIONS_RECORDED).fetchall(), at)
    return [MemoryItem.model_validate_json(data) for data in chosen]


def feed_row(row: tuple[Any, ...]) -> IndexRow:
    vector = row[-1]
    return IndexRow.from_feed(row, None if vector is None else np.frombuffer(vector, np.float32))


def migrations(db: sqlite3.Connection) -> str:
    columns = {row[1] for row in db.execute("PRAGMA table_info(memories)")}
    if not columns:
        return ""
    return "".join(f"{sql};" for column, sql in MIGRATIONS.items() if column not in columns)


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open (and create or migrate) a cube's database: WAL, synchronous=FULL."""
    try:
        db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # a purged row's bytes are overwritten, not freed
        db.executescript(f"BEGIN IMMEDIATE;{migrations(db)}{SCHEMA}COMMIT;")
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):  # locked, busy, unopenable
            raise BackendUnavailableError(
                f"cannot open SQLite store in {path.parent}: {exc}"
            ) from exc
        raise CubeCorruptError(
            f"{path} is not a readable database ({exc}); nothing was changed — restore it "
            "from a backup or an export"
        ) from exc
    except sqlite3.Error as exc:
        raise BackendUnavailableError(f"cannot open SQLite store in {path.parent}: {exc}") from exc
    return db


def present(db: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
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


def write_tags(db: sqlite3.Connection, items: Sequence[MemoryItem]) -> None:
    for item in items:
        db.execute("DELETE FROM tags WHERE id = ?", (item.id,))
        db.executemany(
            "INSERT OR IGNORE INTO tags (tag, id) VALUES (?, ?)",
            [(tag, item.id) for tag in item.tags],
        )


def top_k(
    ids: Sequence[str],
    matrix: np.ndarray,
    vector: np.ndarray,
    n: int,
    allowed: Sequence[str] | None,
) -> list[tuple[str, float]]:
    """The ``n`` rows of ``matrix`` nearest ``vector`` (inner product), among ``allowed``."""
    if not ids:
        return []
    scores = np.einsum("ij,j->i", matrix, np.asarray(vector, dtype=np.float32))
    if allowed is not None:
        keep = set(allowed)
        scores = np.where([i in keep for i in ids], scores, -np.inf)
    top = np.argsort(-scores, kind="stable")[:n]
    return [(ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]


def read_changes(db: sqlite3.Connection, since: int) -> Changes:
    """The change feed after revision ``since`` (all rows if negative), in one read
    transaction: the revision and the rows agree."""
    db.execute("BEGIN")
    try:
        revision = int(db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])
        if revision == since:
            return Changes(revision, [], [])
        if since < 0:
            rows = [feed_row(r) for r in db.execute(FEED_ALL)]
        else:
            found = db.execute(FEED_SINCE, (since,)).fetchall()
            rows = [feed_row(r) for r in sorted(found, key=lambda r: r[1])]
        purged = [
            r[0] for r in db.execute("SELECT id FROM purged WHERE seq > ? ORDER BY seq", (since,))
        ]
    finally:
        db.execute("COMMIT")
    return Changes(revision, rows, purged)


def stack_vectors(rows: Sequence[tuple[str, bytes]]) -> tuple[list[str], np.ndarray]:
    """(id, float32 blob) rows as their ids and one matrix, a row per id."""
    ids = [row[0] for row in rows]
    matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
    return ids, matrix.reshape(len(ids), -1) if ids else matrix.reshape(0, 0)
