"""The entity-resolution log of a cube (``EntityLink``: merges and splits), kept beside its
rows on each engine. A write bumps the store's revision, so every process's search index
(and its entity graph) picks the change up with the next change feed it reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from cubemem.model.graph import EntityLink
from cubemem.store.sqlite_rows import bump

PG_INSERT = "INSERT INTO cubemem_entity_links (cube, data) VALUES (%s, %s)"
PG_SELECT = "SELECT seq, data FROM cubemem_entity_links WHERE cube = %s ORDER BY seq"


def read(rows: list[tuple[Any, ...]]) -> list[EntityLink]:
    """(seq, JSON) rows as links, in log order."""
    out = []
    for seq, data in rows:
        link = (
            EntityLink.model_validate_json(data)
            if isinstance(data, str)
            else (EntityLink.model_validate(data))
        )
        out.append(link.model_copy(update={"seq": int(seq)}))
    return out


def to_json(link: EntityLink) -> str:
    return link.model_dump_json(exclude={"seq"})


class SQLiteLinks:
    """``link_entities`` / ``entity_links`` for the embedded engine (the cube's SQLite)."""

    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _query: Callable[..., list[tuple[Any, ...]]]

    def link_entities(self, link: EntityLink) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO entity_links (data) VALUES (?)", (to_json(link),))
            bump(db)

    def entity_links(self) -> list[EntityLink]:
        return read(self._query("SELECT seq, data FROM entity_links ORDER BY seq"))
