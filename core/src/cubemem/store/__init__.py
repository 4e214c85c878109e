"""Storage engines behind one protocol: ``EmbeddedStore`` (SQLite + Chroma in the cube folder,
the default) and ``PostgresStore`` (PostgreSQL + pgvector); ``open_store`` picks one from a
URL (``Settings.store_url``, ``CUBEMEM_STORE_URL``)."""

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
    raise InvalidInputError(
        f"store URL {url!r} names no engine; use 'sqlite' (the cube folder: SQLite + Chroma) or "
        "'postgresql://user:password@host:5432/db' (PostgreSQL with pgvector)"
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
    if engine_of(url) == "sqlite":
        return EmbeddedStore(path, embedder, busy_timeout_s=busy_timeout_s)
    from cubemem.store.postgres import PostgresStore

    return PostgresStore(url, cube_id, dimension)
