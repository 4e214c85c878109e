"""PostgreSQL + pgvector as a whole engine: rows, append-only versions, tags, the change feed
and the vectors of every cube in one database.

A memory and its vector are written in one transaction, so there is nothing to reconcile after
a crash. Every write transaction of a cube first advances that cube's revision row
(``UPDATE ... RETURNING``), which serialises the cube's writers and stamps the rows they write,
so the change feed (``changes``) is exact across processes and machines. Vectors live in a
``vector`` column; ``nearest`` is answered by an HNSW index per dimension once it is built
(``postgres_schema``: pools, migrations, the index).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np

from cubemem.model import Filters, MemoryItem, decode_namespace
from cubemem.model.graph import EntityLink
from cubemem.store import base, links
from cubemem.store import filters as filters_sql
from cubemem.store import postgres_rows as pg
from cubemem.store.base import Changes, Embeddings, EmbedFn, Items, Repair, Revisions
from cubemem.store.postgres_schema import (
    SCHEMA_VERSION,
    close_pools,
    ensure_vector_index,
    failures,
    migrate,
    pool_for,
    repeatable_read,
    safe_url,
)

__all__ = ["SCHEMA_VERSION", "PostgresStore", "close_pools", "migrate", "pool_for", "safe_url"]


class PostgresStore:
    """The ``MemoryStore`` protocol for one cube (``cube_id``) in a PostgreSQL database."""

    def __init__(
        self, url: str, cube_id: str, dimension: int, *, index_build: tuple[str, int] = ("4GB", 1)
    ) -> None:
        self._url = url
        self._index_build = index_build
        self._cube = cube_id
        self._dims = dimension
        self._pool = pool_for(url)
        migrate(url)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO cubemem_revisions (cube, revision) VALUES (%s, 0) "
                "ON CONFLICT (cube) DO NOTHING",
                (cube_id,),
            )

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        failed = failures(self._url, "; nothing was written")
        with failed, self._pool.connection() as conn, conn.transaction():
            yield conn

    def _bump(self, conn: Any) -> int:
        row = conn.execute(
            "UPDATE cubemem_revisions SET revision = revision + 1 WHERE cube = %s "
            "RETURNING revision",
            (self._cube,),
        ).fetchone()
        return int(row[0])

    @property
    def owns_index(self) -> bool:
        return True

    @property
    def remote_index(self) -> bool:
        return True

    # -- writing --------------------------------------------------------------------------
    def insert(self, items: Items, embeddings: Embeddings, history: Items = ()) -> list[str]:
        if not items:
            return []
        unique = list({i.id: i for i in items}.values())
        with self._tx() as conn:
            revision = self._bump(conn)
            present = {
                r[0]
                for r in conn.execute(
                    "SELECT id FROM cubemem_memories WHERE cube = %s AND id = ANY(%s)",
                    (self._cube, [i.id for i in unique]),
                )
            }
            new = [i for i in unique if i.id not in present]
            if not new:
                conn.execute(
                    "UPDATE cubemem_revisions SET revision = revision - 1 WHERE cube = %s",
                    (self._cube,),
                )
                return []
            new_ids = {i.id for i in new}
            snapshots = {(v.id, v.version): v for v in history if v.id in new_ids}
            snapshots.update({(i.id, i.version): i for i in new})
            with conn.cursor() as cur:
                cur.executemany(
                    pg.INSERT_VERSION,
                    [(self._cube, i, v, pg.to_json(item)) for (i, v), item in snapshots.items()],
                )
                cur.executemany(
                    pg.INSERT_MEMORY,
                    [
                        (
                            self._cube,
                            i.id,
                            *pg.columns(i, embeddings.get(i.id)),
                            pg.to_json(i),
                            pg.namespace(i),
                            revision,
                        )
                        for i in new
                    ],
                )
                used = [i for i in new if i.usage.hits or i.usage.last_access]
                if used:  # imported or composed memories keep their counts
                    cur.executemany(
                        pg.KEEP_USAGE,
                        [
                            (self._cube, i.id, i.usage.hits, pg.ts(i.usage.last_access))
                            for i in used
                        ],
                    )
            self._write_tags(conn, new)
        return [i.id for i in new]

    def revise(self, revisions: Revisions, embeddings: Embeddings) -> None:
        if not revisions:
            return
        base.check_revisions(revisions)
        with self._tx() as conn:
            revision = self._bump(conn)
            moved: list[str] = []
            for item, expected in revisions:
                embedding = embeddings.get(item.id)
                cur = conn.execute(
                    pg.REVISE_MEMORY,
                    (
                        *pg.columns(item, embedding), pg.to_json(item), pg.namespace(item),
                        revision, self._cube, item.id, expected,
                    ),
                )  # fmt: skip
                if cur.rowcount == 0:
                    moved.append(item.id)
            if moved:  # raising rolls the whole transaction back
                raise base.stale(moved)
            items = [item for item, _ in revisions]
            for item in items:
                done = conn.execute(
                    pg.INSERT_VERSION + " ON CONFLICT DO NOTHING",
                    (self._cube, item.id, item.version, pg.to_json(item)),
                )
                if done.rowcount == 0:  # history is append-only: a version is written once
                    raise base.in_history([i.id for i in items])
            self._write_tags(conn, items)

    def extend(self, changes: Sequence[tuple[str, int, datetime]]) -> list[str]:
        if not changes:
            return []
        done: list[str] = []
        with self._tx() as conn:
            revision = self._bump(conn)
            for id_, version, expires_at in changes:
                cur = conn.execute(
                    pg.EXTEND,
                    (
                        expires_at.timestamp(),
                        pg.json_time(expires_at),
                        revision,
                        self._cube,
                        id_,
                        version,
                    ),
                )
                if cur.rowcount:
                    done.append(id_)
            if not done:
                conn.execute(
                    "UPDATE cubemem_revisions SET revision = revision - 1 WHERE cube = %s",
                    (self._cube,),
                )
        return done

    def _write_tags(self, conn: Any, items: Sequence[MemoryItem]) -> None:
        ids = [i.id for i in items]
        conn.execute("DELETE FROM cubemem_tags WHERE cube = %s AND id = ANY(%s)", (self._cube, ids))
        rows = [(self._cube, i.id, tag) for i in items for tag in dict.fromkeys(i.tags)]
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO cubemem_tags (cube, id, tag) VALUES (%s, %s, %s)", rows
                )

    def touch(self, ids: Sequence[str], at: datetime) -> None:
        if not ids:
            return
        with self._tx() as conn:
            conn.execute("SET LOCAL synchronous_commit = off")  # counters: a crash may lose a few
            conn.execute(pg.TOUCH, (self._cube, at.timestamp(), list(ids), self._cube))

    def compact_vectors(self) -> None: ...  # pgvector's index drops dead tuples in VACUUM

    def purge(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._tx() as conn:
            revision = self._bump(conn)
            for table in ("cubemem_memories", "cubemem_tags", "cubemem_versions", "cubemem_usage"):
                conn.execute(
                    f"DELETE FROM {table} WHERE cube = %s AND id = ANY(%s)",
                    (self._cube, list(ids)),
                )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO cubemem_purged (cube, revision, id) VALUES (%s, %s, %s)",
                    [(self._cube, revision, i) for i in ids],
                )

    # -- reading --------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement outside any transaction (autocommit): a single round trip."""
        with failures(self._url), self._pool.connection() as conn:
            return list(conn.execute(sql, params).fetchall())

    def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        rows = self._rows(
            f"SELECT m.id, m.data, {pg.USAGE} FROM cubemem_memories m {pg.JOIN_USAGE} "
            "WHERE m.cube = %s AND m.id = ANY(%s)",
            (self._cube, list(dict.fromkeys(ids))),
        )
        found = {r[0]: pg.read_item(r[1], r[2], r[3]) for r in rows}
        return [found[i] for i in ids if i in found]

    def versions(self, id: str) -> list[MemoryItem]:
        rows = self._rows(
            "SELECT data FROM cubemem_versions WHERE cube = %s AND id = %s ORDER BY version",
            (self._cube, id),
        )
        return [MemoryItem.model_validate(r[0]) for r in rows]

    def versions_at(self, at: datetime) -> list[MemoryItem]:
        rows = self._rows(
            "SELECT DISTINCT ON (id) data FROM cubemem_versions WHERE cube = %s AND "
            "(data->>'updated_at')::timestamptz <= %s ORDER BY id, version DESC",
            (self._cube, at),
        )
        return [MemoryItem.model_validate(r[0]) for r in rows]

    def select(
        self, filters: Filters, *, now: datetime, limit: int | None = None, offset: int = 0
    ) -> list[MemoryItem]:
        where, params = self._where(filters, now)
        rows = self._rows(
            f"SELECT m.data, {pg.USAGE} FROM cubemem_memories m {pg.JOIN_USAGE} WHERE {where} "
            "ORDER BY m.seq LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [pg.read_item(*r) for r in rows]

    def match_ids(self, filters: Filters, *, now: datetime) -> list[str]:
        where, params = self._where(filters, now)
        rows = self._rows(
            f"SELECT m.id FROM cubemem_memories m WHERE {where} ORDER BY m.seq", params
        )
        return [r[0] for r in rows]

    def count(self, filters: Filters, *, now: datetime) -> int:
        where, params = self._where(filters, now)
        return int(
            self._rows(f"SELECT count(*) FROM cubemem_memories m WHERE {where}", params)[0][0]
        )

    def namespaces(self, filters: Filters, *, now: datetime) -> list[tuple[str, ...]]:
        where, params = self._where(filters, now)
        rows = self._rows(
            f"SELECT DISTINCT m.namespace FROM cubemem_memories m WHERE {where} "
            "AND m.namespace IS NOT NULL ORDER BY m.namespace",
            params,
        )
        return [decode_namespace(r[0]) for r in rows]

    def nearest(self, vector: np.ndarray, k: int, allowed: base.Allowed) -> base.Scored:
        n = base.wanted(k, allowed)
        if n <= 0:
            return []
        if allowed is None:
            self.build_vector_index()  # asked without a subset: the cube is large
        d = int(self._dims)
        sql = (
            f"SELECT id, -((vector::vector({d})) <#> %s::vector({d})) FROM cubemem_memories "
            f"WHERE cube = %s AND dims = {d}"
        )
        params: list[Any] = [pg.vector_text(vector), self._cube]
        if allowed is not None:
            sql += " AND id = ANY(%s)"
            params.append(list(allowed))
        sql += f" ORDER BY (vector::vector({d})) <#> %s::vector({d}) LIMIT %s"
        params += [pg.vector_text(vector), n]
        with self._tx() as conn:
            if allowed is None:  # the HNSW index answers (once built): let it look past k
                conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, 2 * n))}")
            rows = conn.execute(sql, params).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        rows = self._rows(
            "SELECT id, vector::text FROM cubemem_memories WHERE cube = %s AND id = ANY(%s) "
            "AND vector IS NOT NULL",
            (self._cube, list(ids)),
        )
        order = {id_: n for n, id_ in enumerate(ids)}
        rows.sort(key=lambda r: order.get(r[0], 0))
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r[0] for r in rows], np.stack([pg.parse_vector(r[1]) for r in rows])

    def build_vector_index(self, *, wait: bool = False) -> bool:
        """Make sure the database has a valid HNSW index for this cube's dimension: start
        building it (``CREATE INDEX CONCURRENTLY``, in a thread; one process per database
        builds, the others wait for it) if it has none. Returns whether it is ready; with
        ``wait`` it returns once the build ends. Until then ``nearest`` is an exact scan."""
        return ensure_vector_index(
            self._url, self._pool, int(self._dims), wait=wait, build=self._index_build
        )

    def link_entities(self, link: EntityLink) -> None:
        with self._tx() as conn:
            conn.execute(links.PG_INSERT, (self._cube, links.to_json(link)))
            self._bump(conn)

    def entity_links(self) -> list[EntityLink]:
        return links.read(self._rows(links.PG_SELECT, (self._cube,)))

    def revision(self) -> int:
        rows = self._rows("SELECT revision FROM cubemem_revisions WHERE cube = %s", (self._cube,))
        return int(rows[0][0]) if rows else 0

    def changes(self, since: int) -> Changes:
        with self._pool.connection() as conn:
            conn.isolation_level = repeatable_read()  # the revision and the rows agree
            try:
                with conn.transaction():
                    return self._changes(conn, since)
            finally:
                conn.isolation_level = None

    def _changes(self, conn: Any, since: int) -> Changes:
        revision = int(
            conn.execute(
                "SELECT revision FROM cubemem_revisions WHERE cube = %s", (self._cube,)
            ).fetchone()[0]
        )
        if revision == since:
            return Changes(revision, [], [])
        changed = conn.execute(pg.FEED, (self._cube, since)).fetchall()
        purged = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM cubemem_purged WHERE cube = %s AND revision > %s ORDER BY revision",
                (self._cube, since),
            )
        ]
        return Changes(revision, [pg.feed_row(r) for r in changed], purged)

    def reconcile(self, embed: EmbedFn) -> Repair:
        """Rows and vectors commit together here; only rows written without a vector (by a
        caller that had none) are embedded now."""
        rows = self._rows(
            "SELECT id FROM cubemem_memories WHERE cube = %s AND vector IS NULL", (self._cube,)
        )
        if not rows:
            return Repair()
        items = self.get([r[0] for r in rows])
        vectors = embed(items)
        with self._tx() as conn:
            for id_, embedding in vectors.items():
                conn.execute(
                    "UPDATE cubemem_memories SET digest = %s, dims = %s, vector = %s::vector "
                    "WHERE cube = %s AND id = %s AND vector IS NULL",
                    (
                        embedding.digest,
                        len(embedding.vector),
                        pg.vector_text(embedding.vector),
                        self._cube,
                        id_,
                    ),
                )
        return Repair(reindexed=list(vectors))

    def close(self) -> None:
        """Connections belong to the process's pool for this URL (``close_pools``)."""

    # -- filters --------------------------------------------------------------------------
    def _where(self, filters: Filters, now: datetime) -> tuple[str, list[Any]]:
        return filters_sql.where(filters, now, filters_sql.PostgreSQL(self._cube))
