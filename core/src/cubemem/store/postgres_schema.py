"""The PostgreSQL engine's schema and what a process holds per database: the versioned
migrations (``cubemem_schema``, applied on first use or by ``cubemem migrate``), one
``psycopg_pool.ConnectionPool`` per URL (shared by the cubes of that URL), and the HNSW index
per vector dimension.

The index is an expression index over ``vector::vector(d)`` for the rows of that dimension,
built when first needed: searches scan up to ``RetrievalConfig.remote_exact_limit`` vectors in
process and ask ``nearest`` only past that, so a database whose cubes stay smaller never pays
the index's cost on every insert (ingest is about 5x faster without it). Until it is built,
``nearest`` is an exact scan. One process per database builds it, in the background.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cubemem.errors import BackendUnavailableError, CubememError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
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
    # The entity-resolution log (merges and splits of the entity graph, ``store/links.py``).
    4: [
        """CREATE TABLE IF NOT EXISTS cubemem_entity_links (
            cube TEXT NOT NULL, seq BIGSERIAL, data JSONB NOT NULL, PRIMARY KEY (cube, seq))""",
    ],
}

LOCK = 7_301_946  # pg_advisory_xact_lock key serialising migrations across processes
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
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
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


INDEXED: set[tuple[str, int]] = set()  # (url, dimension) whose HNSW index is known valid
BUILDERS: dict[tuple[str, int], threading.Thread] = {}
BUILDERS_LOCK = threading.Lock()


def index_valid(pool: Any, dims: int) -> bool:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (f"cubemem_hnsw_{dims}",),
        ).fetchone()
    return bool(row and row[0])


def build_index(url: str, dims: int, memory: str = "4GB", workers: int = 1) -> None:
    """Build the HNSW index of dimension ``dims`` unless a valid one exists (a build that died
    leaves an invalid index behind: it is dropped and built again). Serialised across
    processes by an advisory lock; on failure searches stay exact scans, and the next large
    search tries again. ``memory`` and ``workers``: ``maintenance_work_mem`` and
    ``max_parallel_maintenance_workers`` of the building session alone (with the server's
    default 64MB the graph of 10^6 vectors spills and the build takes hours)."""
    import psycopg

    name = f"cubemem_hnsw_{dims}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK + 1 + dims,))
            try:
                row = conn.execute(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
                ).fetchone()
                if row and row[0]:
                    return
                if row:
                    conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                # SET takes no parameters; both values are checked by Settings and again here
                if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", memory):
                    raise ValueError(f"maintenance_work_mem {memory!r}")
                conn.execute(f"SET maintenance_work_mem = '{memory}'")
                conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
                started = time.monotonic()
                log.info("building the HNSW index %s (%s, %d workers)", name, memory, workers)
                conn.execute(
                    f"CREATE INDEX CONCURRENTLY {name} ON cubemem_memories "
                    f"USING hnsw ((vector::vector({dims})) vector_ip_ops) WHERE dims = {dims}"
                )
                log.info("built %s in %.1f s", name, time.monotonic() - started)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK + 1 + dims,))
    except Exception:
        log.warning("building the HNSW index %s failed; searches stay exact", name, exc_info=True)


def repeatable_read() -> Any:
    from psycopg import IsolationLevel

    return IsolationLevel.REPEATABLE_READ


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return url


def ensure_vector_index(
    url: str, pool: Any, dims: int, *, wait: bool, build: tuple[str, int] = ("4GB", 1)
) -> bool:
    """Whether the HNSW index for ``dims`` is ready; if not, start building it in a thread
    (``CREATE INDEX CONCURRENTLY``; one process per database builds, the others wait for
    it). With ``wait`` it returns once the build ends."""
    key = (url, dims)
    if key in INDEXED or index_valid(pool, dims):
        INDEXED.add(key)
        return True
    with BUILDERS_LOCK:
        builder = BUILDERS.get(key)
        if builder is None or not builder.is_alive():
            builder = threading.Thread(
                target=build_index,
                args=(*key, *build),
                name=f"cubemem-hnsw-{dims}",
                daemon=True,
            )
            BUILDERS[key] = builder
            builder.start()
    if not wait:
        return False
    builder.join()
    return ensure_vector_index(url, pool, dims, wait=False, build=build)


@contextmanager
def failures(url: str, after: str = "") -> Iterator[None]:
    """PostgreSQL's errors as ``BackendUnavailableError`` naming the server (its password
    left out); cubemem's own errors pass as they are."""
    try:
        yield
    except CubememError:
        raise
    except Exception as exc:
        from psycopg import Error as PgError

        if isinstance(exc, PgError):
            raise BackendUnavailableError(
                f"PostgreSQL at {safe_url(url)} failed ({exc}){after}"
            ) from exc
        raise
