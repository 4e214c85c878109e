"""PostgreSQL + pgvector as a whole engine: rows, append-only versions, tags, the change feed
and the vectors of every cube in one database.

A memory and its vector are written in one transaction, so there is nothing to reconcile after
a crash. Every write transaction of a cube first advances that cube's revision row
(``UPDATE ... RETURNING``), which serialises the cube's writers and stamps the rows they write,
so the change feed (``changes``) is exact across processes and machines. Vectors live in a
``vector`` column. ``nearest`` is answered by an HNSW index per dimension (an expression index
over ``vector::vector(d)`` for the rows of that dimension), built when first needed: searches
scan up to ``RetrievalConfig.remote_exact_limit`` vectors in process and ask ``nearest`` only
past that, so a database whose cubes stay smaller never pays the index's cost on every insert
(ingest is about 5x faster without it). Until it is built, ``nearest`` is an exact scan.

Connections come from a ``psycopg_pool.ConnectionPool`` (shared by the cubes of one URL in a
process). The schema is versioned (``cubemem_schema``) and migrated on first use or by
``cubemem migrate``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cubemem.errors import BackendUnavailableError, ConflictError, InvalidFilterError
from cubemem.model import Filters, MemoryItem, Usage, decode_namespace, encode_namespace
from cubemem.store import filters as filters_sql
from cubemem.store.base import Changes, Embedding, EmbedFn, IndexRow, Repair

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE EXTENSION IF NOT EXISTS vector",
        """CREATE TABLE IF NOT EXISTS cubemem_memories (
            cube TEXT NOT NULL, id TEXT NOT NULL, seq BIGSERIAL, status TEXT NOT NULL,
            kind TEXT NOT NULL, user_id TEXT, agent_id TEXT, session_id TEXT,
            event_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,
            version INTEGER NOT NULL, digest TEXT, dims INTEGER, vector vector,
            hits INTEGER NOT NULL DEFAULT 0, last_access DOUBLE PRECISION, data JSONB NOT NULL,
            namespace TEXT, changed_at BIGINT NOT NULL, PRIMARY KEY (cube, id))""",
        "CREATE INDEX IF NOT EXISTS cubemem_memories_order ON cubemem_memories (cube, seq)",
        "CREATE INDEX IF NOT EXISTS cubemem_memories_changed ON cubemem_memories "
        "(cube, changed_at)",
        "CREATE INDEX IF NOT EXISTS cubemem_memories_scope ON cubemem_memories "
        "(cube, user_id, agent_id, session_id)",
        "CREATE INDEX IF NOT EXISTS cubemem_memories_namespace ON cubemem_memories "
        "(cube, namespace) WHERE namespace IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS cubemem_versions (
            cube TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data JSONB NOT NULL,
            PRIMARY KEY (cube, id, version))""",
        """CREATE TABLE IF NOT EXISTS cubemem_tags (
            cube TEXT NOT NULL, id TEXT NOT NULL, tag TEXT NOT NULL,
            PRIMARY KEY (cube, tag, id))""",
        "CREATE INDEX IF NOT EXISTS cubemem_tags_id ON cubemem_tags (cube, id)",
        """CREATE TABLE IF NOT EXISTS cubemem_purged (
            cube TEXT NOT NULL, revision BIGINT NOT NULL, id TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS cubemem_purged_rev ON cubemem_purged (cube, revision)",
        """CREATE TABLE IF NOT EXISTS cubemem_revisions (
            cube TEXT PRIMARY KEY, revision BIGINT NOT NULL)""",
    ],
    # Usage counters move to their own table: counting a hit rewrote the memory's row, and an
    # update that cannot stay on its page (HOT) re-inserts the row into every index — the HNSW
    # index included — on every search.
    2: [
        """CREATE TABLE IF NOT EXISTS cubemem_usage (
            cube TEXT NOT NULL, id TEXT NOT NULL, hits INTEGER NOT NULL,
            last_access DOUBLE PRECISION, PRIMARY KEY (cube, id))""",
        "INSERT INTO cubemem_usage (cube, id, hits, last_access) SELECT cube, id, hits, "
        "last_access FROM cubemem_memories WHERE hits > 0 OR last_access IS NOT NULL "
        "ON CONFLICT DO NOTHING",
        "ALTER TABLE cubemem_memories DROP COLUMN IF EXISTS hits",
        "ALTER TABLE cubemem_memories DROP COLUMN IF EXISTS last_access",
    ],
    # The MemoryOS catalog (its id, its cubes' manifests) and the access tables, so servers
    # on several machines share one memory with no folder in common (``store/catalog.py``).
    3: [
        """CREATE TABLE IF NOT EXISTS cubemem_os (
            one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), id TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS cubemem_cubes (
            name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, manifest JSONB NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS cubemem_agents (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL UNIQUE,
            trust DOUBLE PRECISION NOT NULL, operator INTEGER NOT NULL,
            disabled INTEGER NOT NULL, created_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS cubemem_grants (
            agent TEXT NOT NULL REFERENCES cubemem_agents(id) ON DELETE CASCADE,
            cube TEXT NOT NULL, "right" TEXT NOT NULL, scope TEXT, PRIMARY KEY (agent, cube))""",
        """CREATE TABLE IF NOT EXISTS cubemem_policies (
            cube TEXT PRIMARY KEY, trust_threshold DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS cubemem_audit (
            seq BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, agent TEXT, action TEXT NOT NULL,
            cube TEXT, memory_id TEXT, version INTEGER, detail TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS cubemem_audit_cube ON cubemem_audit (cube, seq)",
    ],
}

_ITEM_JSON_EXCLUDE = {"usage"}
_USAGE = "coalesce(u.hits, 0), u.last_access"
_JOIN_USAGE = "LEFT JOIN cubemem_usage u ON u.cube = m.cube AND u.id = m.id"
_LOCK = 7_301_946  # pg_advisory_xact_lock key serialising migrations across processes
_POOLS: dict[str, Any] = {}
_POOLS_LOCK = threading.Lock()


def pool_for(url: str, *, max_size: int = 8) -> Any:
    """One ``ConnectionPool`` per URL per process, opened on first use."""
    from psycopg_pool import ConnectionPool

    with _POOLS_LOCK:
        if url not in _POOLS:
            # autocommit: a read is one round trip; writes open their transaction (``_tx``)
            pool = ConnectionPool(
                url, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": True}
            )
            try:
                pool.open(wait=True, timeout=30)
            except Exception as exc:
                raise BackendUnavailableError(
                    f"cannot connect to PostgreSQL at {safe_url(url)} ({exc}); check the URL and "
                    "that the server runs"
                ) from exc
            _POOLS[url] = pool
        return _POOLS[url]


def close_pools() -> None:
    """Close every pool this process opened (a long-lived process need not)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


def migrate(url: str) -> int:
    """Bring the database at ``url`` to the current schema; returns the version it is at."""
    with pool_for(url).connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS cubemem_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM cubemem_schema").fetchone()
        current = row[0] or 0 if row else 0
        if current > SCHEMA_VERSION:
            raise BackendUnavailableError(
                f"the database is at cubemem schema {current}, newer than this cubemem "
                f"({SCHEMA_VERSION}); upgrade cubemem"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO cubemem_schema (version) VALUES (%s)", (version,))
    return SCHEMA_VERSION


class PostgresStore:
    """The ``MemoryStore`` protocol for one cube (``cube_id``) in a PostgreSQL database."""

    def __init__(self, url: str, cube_id: str, dimension: int) -> None:
        self._url = url
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
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (ConflictError, InvalidFilterError):
            raise
        except Exception as exc:
            from psycopg import Error as PgError

            if isinstance(exc, PgError):
                raise BackendUnavailableError(
                    f"PostgreSQL at {safe_url(self._url)} failed ({exc}); nothing was written"
                ) from exc
            raise

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
    def insert(
        self,
        items: Sequence[MemoryItem],
        embeddings: Mapping[str, Embedding],
        history: Sequence[MemoryItem] = (),
    ) -> list[str]:
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
                    "INSERT INTO cubemem_versions (cube, id, version, data) "
                    "VALUES (%s, %s, %s, %s)",
                    [(self._cube, i, v, _json(item)) for (i, v), item in snapshots.items()],
                )
                cur.executemany(
                    "INSERT INTO cubemem_memories (cube, id, status, kind, user_id, agent_id, "
                    "session_id, event_at, expires_at, version, digest, dims, vector, data, "
                    "namespace, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s::vector, %s, %s, %s)",
                    [
                        (
                            self._cube,
                            i.id,
                            *_columns(i, embeddings.get(i.id)),
                            _json(i),
                            _namespace(i),
                            revision,
                        )
                        for i in new
                    ],
                )
                used = [i for i in new if i.usage.hits or i.usage.last_access]
                if used:  # imported or composed memories keep their counts
                    cur.executemany(
                        "INSERT INTO cubemem_usage (cube, id, hits, last_access) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (cube, id) DO UPDATE SET "
                        "hits = EXCLUDED.hits, last_access = EXCLUDED.last_access",
                        [(self._cube, i.id, i.usage.hits, _ts(i.usage.last_access)) for i in used],
                    )
            self._write_tags(conn, new)
        return [i.id for i in new]

    def revise(
        self, revisions: Sequence[tuple[MemoryItem, int]], embeddings: Mapping[str, Embedding]
    ) -> None:
        if not revisions:
            return
        for item, expected in revisions:
            if item.version <= expected:
                raise ValueError(f"revision of {item.id} must raise its version past {expected}")
        with self._tx() as conn:
            revision = self._bump(conn)
            stale = []
            for item, expected in revisions:
                embedding = embeddings.get(item.id)
                status, kind, user, agent, session, event, expires, version, digest, dims, vec = (
                    _columns(item, embedding)
                )
                cur = conn.execute(
                    "UPDATE cubemem_memories SET status = %s, kind = %s, user_id = %s, "
                    "agent_id = %s, session_id = %s, event_at = %s, expires_at = %s, "
                    "version = %s, digest = COALESCE(%s, digest), dims = COALESCE(%s, dims), "
                    "vector = COALESCE(%s::vector, vector), data = %s, namespace = %s, "
                    "changed_at = %s WHERE cube = %s AND id = %s AND version = %s",
                    (
                        status, kind, user, agent, session, event, expires, version, digest,
                        dims, vec, _json(item), _namespace(item), revision, self._cube, item.id,
                        expected,
                    ),
                )  # fmt: skip
                if cur.rowcount == 0:
                    stale.append(item.id)
            if stale:  # raising rolls the whole transaction back
                raise ConflictError(
                    f"memories {stale} changed since they were read (or are gone); nothing "
                    "was written. Read them again and retry",
                    stale,
                )
            items = [item for item, _ in revisions]
            for item in items:
                done = conn.execute(
                    "INSERT INTO cubemem_versions (cube, id, version, data) VALUES "
                    "(%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (self._cube, item.id, item.version, _json(item)),
                )
                if done.rowcount == 0:  # history is append-only: a version is written once
                    raise ConflictError(
                        f"a version of {item.id} is already in the history; nothing was "
                        "written. Read the memory again and retry",
                        [i.id for i in items],
                    )
            self._write_tags(conn, items)

    def extend(self, changes: Sequence[tuple[str, int, datetime]]) -> list[str]:
        if not changes:
            return []
        done: list[str] = []
        with self._tx() as conn:
            revision = self._bump(conn)
            for id_, version, expires_at in changes:
                cur = conn.execute(
                    "UPDATE cubemem_memories SET expires_at = %s, data = jsonb_set(data, "
                    "'{expires_at}', to_jsonb(%s::text)), changed_at = %s WHERE cube = %s AND "
                    "id = %s AND version = %s AND status = 'active'",
                    (
                        expires_at.timestamp(),
                        _json_time(expires_at),
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
            # usage counters are statistics: a crash may lose the last few, never a memory
            conn.execute("SET LOCAL synchronous_commit = off")
            conn.execute(  # one hit per mention: an id asked twice counts twice
                "INSERT INTO cubemem_usage (cube, id, hits, last_access) "
                "SELECT %s, c.id, c.n, %s FROM (SELECT id, count(*) AS n "
                "FROM unnest(%s::text[]) AS id GROUP BY id) c "
                "JOIN cubemem_memories m ON m.cube = %s AND m.id = c.id "
                "ORDER BY c.id "  # one lock order: concurrent searches never deadlock
                "ON CONFLICT (cube, id) DO UPDATE SET hits = cubemem_usage.hits + EXCLUDED.hits, "
                "last_access = EXCLUDED.last_access",
                (self._cube, at.timestamp(), list(ids), self._cube),
            )

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
        try:
            with self._pool.connection() as conn:
                return list(conn.execute(sql, params).fetchall())
        except InvalidFilterError:
            raise
        except Exception as exc:
            from psycopg import Error as PgError

            if isinstance(exc, PgError):
                raise BackendUnavailableError(
                    f"PostgreSQL at {safe_url(self._url)} failed ({exc})"
                ) from exc
            raise

    def get(self, ids: Sequence[str]) -> list[MemoryItem]:
        rows = self._rows(
            f"SELECT m.id, m.data, {_USAGE} FROM cubemem_memories m {_JOIN_USAGE} "
            "WHERE m.cube = %s AND m.id = ANY(%s)",
            (self._cube, list(dict.fromkeys(ids))),
        )
        found = {r[0]: _item(r[1], r[2], r[3]) for r in rows}
        return [found[i] for i in ids if i in found]

    def versions(self, id: str) -> list[MemoryItem]:
        rows = self._rows(
            "SELECT data FROM cubemem_versions WHERE cube = %s AND id = %s ORDER BY version",
            (self._cube, id),
        )
        return [MemoryItem.model_validate(r[0]) for r in rows]

    def select(
        self, filters: Filters, *, now: datetime, limit: int | None = None, offset: int = 0
    ) -> list[MemoryItem]:
        where, params = self._where(filters, now)
        rows = self._rows(
            f"SELECT m.data, {_USAGE} FROM cubemem_memories m {_JOIN_USAGE} WHERE {where} "
            "ORDER BY m.seq LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        return [_item(*r) for r in rows]

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

    def nearest(
        self, vector: np.ndarray, k: int, allowed: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        n = k if allowed is None else min(k, len(allowed))
        if n <= 0:
            return []
        if allowed is None:
            self.build_vector_index()  # asked without a subset: the cube is large
        d = int(self._dims)
        sql = (
            f"SELECT id, -((vector::vector({d})) <#> %s::vector({d})) FROM cubemem_memories "
            f"WHERE cube = %s AND dims = {d}"
        )
        params: list[Any] = [_vector_text(vector), self._cube]
        if allowed is not None:
            sql += " AND id = ANY(%s)"
            params.append(list(allowed))
        sql += f" ORDER BY (vector::vector({d})) <#> %s::vector({d}) LIMIT %s"
        params += [_vector_text(vector), n]
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
        return [r[0] for r in rows], np.stack([_parse_vector(r[1]) for r in rows])

    def build_vector_index(self, *, wait: bool = False) -> bool:
        """Make sure the database has a valid HNSW index for this cube's dimension: start
        building it (``CREATE INDEX CONCURRENTLY``, in a thread; one process per database
        builds, the others wait for it) if it has none. Returns whether it is ready; with
        ``wait`` it returns once the build ends. Until then ``nearest`` is an exact scan."""
        key = (self._url, int(self._dims))
        if key in _INDEXED or _index_valid(self._pool, key[1]):
            _INDEXED.add(key)
            return True
        with _BUILDERS_LOCK:
            builder = _BUILDERS.get(key)
            if builder is None or not builder.is_alive():
                builder = threading.Thread(
                    target=_build_index, args=key, name=f"cubemem-hnsw-{key[1]}", daemon=True
                )
                _BUILDERS[key] = builder
                builder.start()
        if not wait:
            return False
        builder.join()
        return self.build_vector_index()

    def revision(self) -> int:
        rows = self._rows("SELECT revision FROM cubemem_revisions WHERE cube = %s", (self._cube,))
        return int(rows[0][0]) if rows else 0

    def changes(self, since: int) -> Changes:
        with self._pool.connection() as conn:
            conn.isolation_level = _repeatable_read()  # the revision and the rows agree
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
        rows = conn.execute(
            "SELECT m.id, m.seq, m.status, m.kind, m.user_id, m.agent_id, m.session_id, "
            "m.expires_at, m.data->'provenance'->>'source', "
            "m.data->'provenance'->>'speaker', m.data->'provenance'->>'occurred_at', "
            "m.data->>'content', m.data->>'context', m.vector::text "
            "FROM cubemem_memories m WHERE m.cube = %s AND m.changed_at > %s "
            "ORDER BY m.seq",
            (self._cube, since),
        ).fetchall()
        purged = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM cubemem_purged WHERE cube = %s AND revision > %s ORDER BY revision",
                (self._cube, since),
            )
        ]
        return Changes(revision, [_feed_row(r) for r in rows], purged)

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
                        _vector_text(embedding.vector),
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


# -- rows -------------------------------------------------------------------------------------
def _columns(item: MemoryItem, embedding: Embedding | None) -> tuple[Any, ...]:
    return (
        item.status.value,
        item.kind.value,
        item.scope.user,
        item.scope.agent,
        item.scope.session,
        _ts(item.event_time),
        _ts(item.expires_at),
        item.version,
        embedding.digest if embedding else None,
        len(embedding.vector) if embedding else None,
        _vector_text(embedding.vector) if embedding else None,
    )


def _namespace(item: MemoryItem) -> str | None:
    return None if item.namespace is None else encode_namespace(item.namespace)


def _json(item: MemoryItem) -> str:
    return item.model_dump_json(exclude=_ITEM_JSON_EXCLUDE)


def _json_time(value: datetime) -> str:
    from pydantic_core import to_jsonable_python

    return str(to_jsonable_python(value))


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _item(data: Any, hits: int, last_access: float | None) -> MemoryItem:
    item = MemoryItem.model_validate(data)
    item.usage = Usage(
        hits=hits,
        last_access=None if last_access is None else datetime.fromtimestamp(last_access, UTC),
    )
    return item


def _vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


def _parse_vector(text: str) -> np.ndarray:
    return np.asarray(json.loads(text), dtype=np.float32)


def _feed_row(row: tuple[Any, ...]) -> IndexRow:
    (
        id_, order, status, kind, user, agent, session, expires_at, source, speaker,
        occurred_at, content, context, vector,
    ) = row  # fmt: skip
    return IndexRow(
        id=id_,
        order=order,
        status=status,
        kind=kind,
        user=user,
        agent=agent,
        session=session,
        expires_at=expires_at,
        source=source,
        speaker=speaker,
        occurred_at=None if occurred_at is None else datetime.fromisoformat(occurred_at),
        content=content,
        context=context,
        vector=None if vector is None else _parse_vector(vector),
    )


_INDEXED: set[tuple[str, int]] = set()  # (url, dimension) whose HNSW index is known valid
_BUILDERS: dict[tuple[str, int], threading.Thread] = {}
_BUILDERS_LOCK = threading.Lock()


def _index_valid(pool: Any, dims: int) -> bool:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (f"cubemem_hnsw_{dims}",),
        ).fetchone()
    return bool(row and row[0])


def _build_index(url: str, dims: int) -> None:
    """Build the HNSW index of dimension ``dims`` unless a valid one exists (a build that died
    leaves an invalid index behind: it is dropped and built again). Serialised across
    processes by an advisory lock; on failure searches stay exact scans, and the next large
    search tries again."""
    import psycopg

    name = f"cubemem_hnsw_{dims}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK + 1 + dims,))
            try:
                row = conn.execute(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
                ).fetchone()
                if row and row[0]:
                    return
                if row:
                    conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                started = time.monotonic()
                log.info("building the HNSW index %s", name)
                conn.execute(
                    f"CREATE INDEX CONCURRENTLY {name} ON cubemem_memories "
                    f"USING hnsw ((vector::vector({dims})) vector_ip_ops) WHERE dims = {dims}"
                )
                log.info("built %s in %.1f s", name, time.monotonic() - started)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK + 1 + dims,))
    except Exception:
        log.warning("building the HNSW index %s failed; searches stay exact", name, exc_info=True)


def _repeatable_read() -> Any:
    from psycopg import IsolationLevel

    return IsolationLevel.REPEATABLE_READ


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return url
