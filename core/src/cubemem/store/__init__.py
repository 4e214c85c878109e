"""Storage engines behind one protocol; ``EmbeddedStore`` (SQLite + Chroma) is the default."""

from cubemem.store.base import Embedding, MemoryStore, Repair
from cubemem.store.embedded import EmbeddedStore

__all__ = ["EmbeddedStore", "Embedding", "MemoryStore", "Repair"]
