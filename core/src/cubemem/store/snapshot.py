"""``Filters`` over memories that are not rows: the versions a cube held at a past moment.

A search ``known_at`` a moment reads each memory's version current then (``versions_at``),
which no engine keeps as rows. Rather than a second meaning of every filter in Python, the
versions are loaded into an in-memory SQLite table of the embedded engine's schema and asked
the same SQL (``cubemem.store.filters``), so a filter means one thing on every timeline and
every engine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from cubemem.model import Filters, MemoryItem
from cubemem.store import filters as filters_sql
from cubemem.store.sqlite_rows import INSERT, SCHEMA, row_values, write_tags


def matching(items: Sequence[MemoryItem], filters: Filters, now: datetime) -> list[str]:
    """The ids of ``items`` that ``filters`` allow at ``now`` (expiry is judged at ``now``)."""
    if not items:
        return []
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.executescript(SCHEMA)
        db.execute("BEGIN")
        db.executemany(INSERT, [row_values(item, None, 0) for item in items])
        write_tags(db, items)
        db.execute("COMMIT")
        where, params = filters_sql.where(filters, now, filters_sql.SQLite())
        rows = db.execute(f"SELECT m.id FROM memories m WHERE {where}", params).fetchall()
    finally:
        db.close()
    return [row[0] for row in rows]
