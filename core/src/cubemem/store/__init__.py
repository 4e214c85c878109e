"""Storage engines behind one protocol: ``EmbeddedStore`` (SQLite + Chroma in the cube folder,
the default), ``ChromaServerStore`` (the same rows, vectors in a ``chroma run`` server) and
``PostgresStore`` (PostgreSQL + pgvector); ``open_store`` picks one from a URL
(``Settings.store_url``, ``CUBEMEM_STORE_URL``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.store.base import Embedding, MemoryStore, Repair
from cubemem.store.embedded import EmbeddedStore

__all__ = ["EmbeddedStore", "Embedding", "MemoryStore", "Repair", "engine_of", "open_store"]


def engine_of(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``: the engine that keeps a store URL's rows."""
    if not isinstance(url, str):
        raise InvalidInputError(f"a store URL is a string, got {type(url).__name__}")
    if url in ("sqlite", "embedded") or url.startswith("sqlite://"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    if url.startswith(("chroma+http://", "chroma+https://")):
        _chroma_rows(url)
        return "sqlite"  # the rows stay in the cube folder; only the vectors move
    raise InvalidInputError(
        f"store URL {url!r} names no engine; use 'sqlite' or 'sqlite:///DATA_ROOT' (the cube "
        "folder: SQLite + Chroma), 'postgresql://user:password@host:5432/db' (PostgreSQL with "
        "pgvector) or 'chroma+http://host:port' (rows in the cube folder, vectors in a Chroma "
        "server)"
    )


def _chroma_rows(url: str) -> None:
    """Check a Chroma-server URL's ``rows=`` option: the rows live in SQLite (the default)."""
    rows = parse_qs(urlsplit(url).query).get("rows", ["sqlite"])
    if rows != ["sqlite"]:
        raise InvalidInputError(
            f"{url!r}: rows={rows[-1]} is not offered with a Chroma server; its rows live in "
            "SQLite in the cube folder (rows=sqlite, the default). For rows in PostgreSQL use "
            "postgresql://... alone: it keeps the vectors beside the rows (pgvector), in the "
            "same transaction"
        )


def _check_sqlite_path(url: str, path: Path) -> None:
    """``sqlite:///ROOT``: the embedded engine keeps a cube's rows in the cube's own folder, so
    a path, when given, must be that folder or a folder holding it (the data root)."""
    where = urlsplit(url).path if url.startswith("sqlite://") else ""
    if not where or where == "/":
        return
    named = Path(where).expanduser().resolve()
    cube = path.expanduser().resolve()
    if named != cube and named not in cube.parents:
        raise InvalidInputError(
            f"store URL {url!r} names {named}, but the embedded engine keeps this cube's rows "
            f"in its own folder {cube}; use 'sqlite' (or sqlite://{cube.parent}), or open "
            "the cube where the URL points"
        )


def open_store(
    url: str,
    path: Path,
    cube_id: str,
    dimension: int,
    embedder: Embedder,
    *,
    busy_timeout_s: float = 30.0,
    open_index: bool = True,
    index_build: tuple[str, int] = ("4GB", 1),
) -> MemoryStore:
    """The engine ``url`` names, holding cube ``cube_id`` (whose folder is ``path``);
    ``index_build``: PostgreSQL's ``maintenance_work_mem`` and parallel workers for its HNSW
    build."""
    if url.startswith(("chroma+http://", "chroma+https://")):
        from cubemem.store.chroma_server import ChromaServerStore

        return ChromaServerStore(path, embedder, url, cube_id, busy_timeout_s=busy_timeout_s)
    if engine_of(url) == "sqlite":
        _check_sqlite_path(url, path)
        return EmbeddedStore(path, embedder, busy_timeout_s=busy_timeout_s, open_index=open_index)
    from cubemem.store.postgres import PostgresStore

    return PostgresStore(url, cube_id, dimension, index_build=index_build)
