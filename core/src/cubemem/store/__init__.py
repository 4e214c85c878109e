"""Storage engines behind one protocol: ``EmbeddedStore`` (SQLite + Chroma in the cube folder,
the default), ``ChromaServerStore`` (the same rows, vectors in a ``chroma run`` server) and
``PostgresStore`` (PostgreSQL + pgvector); ``open_store`` picks one from a URL
(``Settings.store_url``, ``CUBEMEM_STORE_URL``)."""

from __future__ import annotations

from pathlib import Path

from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.store.base import Embedding, MemoryStore, Repair
from cubemem.store.embedded import EmbeddedStore

__all__ = ["EmbeddedStore", "Embedding", "MemoryStore", "Repair", "engine_of", "open_store"]


def engine_of(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``: the engine a store URL names."""
    if url in ("sqlite", "sqlite://", "embedded"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    if url.startswith(("chroma+http://", "chroma+https://")):
        return "sqlite"  # the rows stay in the cube folder; only the vectors move
    raise InvalidInputError(
        f"store URL {url!r} names no engine; use 'sqlite' (the cube folder: SQLite + Chroma), "
        "'postgresql://user:password@host:5432/db' (PostgreSQL with pgvector) or "
        "'chroma+http://host:port' (rows in the cube folder, vectors in a Chroma server)"
    )


def open_store(
    url: str,
    path: Path,
    cube_id: str,
    dimension: int,
    embedder: Embedder,
    *,
    busy_timeout_s: float = 30.0,
) -> MemoryStore:
    """The engine ``url`` names, holding cube ``cube_id`` (whose folder is ``path``)."""
    if url.startswith(("chroma+http://", "chroma+https://")):
        from cubemem.store.chroma_server import ChromaServerStore

        return ChromaServerStore(path, embedder, url, cube_id, busy_timeout_s=busy_timeout_s)
    if engine_of(url) == "sqlite":
        return EmbeddedStore(path, embedder, busy_timeout_s=busy_timeout_s)
    from cubemem.store.postgres import PostgresStore

    return PostgresStore(url, cube_id, dimension)
