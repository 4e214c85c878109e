"""What a MemoryOS on PostgreSQL keeps in the database besides the memories: its identity,
its cubes' manifests, and the tables behind ``cubemem.access`` (agents, grants, trust
policies, audit log).

With them in the database, a ``cubemem serve`` or ``cubemem worker`` on another machine needs
no folder in common with the others: its ``--data`` folder is a local cache that it fills from
the catalog (``memoryos.json`` with the database's id, one folder per cube it opens, holding the
manifest). Schema 3 of ``store/postgres.py`` creates the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cubemem.errors import BackendUnavailableError
from cubemem.store.postgres_schema import migrate, pool_for, safe_url


class PostgresCatalog:
    """The MemoryOS identity and cube manifests in the database at ``url``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._pool = pool_for(url)
        migrate(url)

    def claim_os(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """The database's MemoryOS manifest (``id``, ``created_at``): ``proposed`` if it holds
        none yet (the first root to open it), else the one it holds."""
        with self._errors(), self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO cubemem_os (id, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (proposed["id"], proposed["created_at"]),
            )
            row = conn.execute("SELECT id, created_at FROM cubemem_os").fetchone()
        return {"id": row[0], "created_at": row[1]}

    def names(self) -> list[str]:
        with self._errors(), self._pool.connection() as conn:
            rows = conn.execute("SELECT name FROM cubemem_cubes ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def manifest(self, name: str) -> dict[str, Any] | None:
        """The manifest registered under ``name`` (as JSON data), or None."""
        with self._errors(), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT manifest FROM cubemem_cubes WHERE name = %s", (name,)
            ).fetchone()
        return None if row is None else dict(row[0])

    def by_id(self, cube_id: str) -> str | None:
        """The name of the cube whose id is ``cube_id``, or None."""
        with self._errors(), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT name FROM cubemem_cubes WHERE id = %s", (cube_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def register(self, name: str, manifest: dict[str, Any]) -> bool:
        """Record cube ``name``; False when the name (or the id) is taken already."""
        with self._errors(), self._pool.connection() as conn:
            cursor = conn.execute(
                "INSERT INTO cubemem_cubes (name, id, manifest) VALUES (%s, %s, %s::jsonb) "
                "ON CONFLICT DO NOTHING",
                (name, manifest["id"], json.dumps(manifest)),
            )
            return cursor.rowcount == 1

    def _errors(self) -> Any:
        return _translated(self._url, "the MemoryOS catalog")


class PostgresTables:
    """``cubemem.access``'s tables in PostgreSQL: the same statements as on SQLite (written with
    ``?`` placeholders and ``{table}`` names), run through the URL's pool."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._pool = pool_for(url)
        migrate(url)

    def sql(self, statement: str) -> str:
        return statement.format(**_TABLES).replace("?", "%s")

    def rows(self, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with _translated(self._url, "the access tables"), self._pool.connection() as conn:
            return conn.execute(self.sql(statement), params).fetchall()

    @contextmanager
    def write(self) -> Iterator[Any]:
        """A transaction whose ``execute(statement, params)`` takes the SQLite spelling."""
        with (
            _translated(self._url, "the access tables"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            yield _Translating(conn, self)

    def close(self) -> None:
        """The pool is the process's (``close_pools``); nothing to do per user."""


_TABLES = {
    "agents": "cubemem_agents",
    "grants": "cubemem_grants",
    "cubes": "cubemem_policies",
    "audit": "cubemem_audit",
}


class DuplicateError(Exception):
    """A unique key was taken between the check and the write (another process won)."""


class _Translating:
    def __init__(self, conn: Any, tables: PostgresTables) -> None:
        self._conn = conn
        self._tables = tables

    def execute(self, statement: str, params: Any = ()) -> Any:
        return self._conn.execute(self._tables.sql(statement), params)


@contextmanager
def _translated(url: str, what: str) -> Iterator[None]:
    """PostgreSQL errors as cubemem's: a taken unique key is ``DuplicateError``, the rest
    ``BackendUnavailableError`` (the transaction was rolled back)."""
    try:
        yield
    except Exception as exc:
        from psycopg import Error as PgError
        from psycopg.errors import UniqueViolation

        if isinstance(exc, UniqueViolation):
            raise DuplicateError(str(exc)) from exc
        if isinstance(exc, PgError):
            raise BackendUnavailableError(
                f"PostgreSQL at {safe_url(url)} failed on {what} ({exc}); nothing was changed. "
                "Check that the server runs"
            ) from exc
        raise
