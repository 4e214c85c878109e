"""What a memory's vector and index text are made of: ``[date] speaker: content``, its
context averaged in, and the digest that tells a stale vector from a current one."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cubemem import searchindex
from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.model import MemoryItem
from cubemem.store.base import Embedding


def index_text(item: MemoryItem) -> str:
    """The memory as a retriever sees it: ``[date] speaker: content``."""
    return searchindex.index_text(
        item.content, item.provenance.speaker, item.provenance.occurred_at
    )


def dense_texts(item: MemoryItem) -> list[str]:
    """The texts whose vectors are averaged into the memory's one vector."""
    text = index_text(item)
    return [text, f"{text} (after: {item.context})"] if item.context else [text]


def digest(texts: Sequence[str]) -> str:
    return hashlib.blake2b("\x1f".join(texts).encode("utf-8"), digest_size=12).hexdigest()


def embed_items(embedder: Embedder, items: Sequence[MemoryItem]) -> dict[str, Embedding]:
    """One vector per memory, all texts embedded in one batched call."""
    texts = [dense_texts(item) for item in items]
    flat = [t for group in texts for t in group]
    vectors = np.asarray(embedder.embed_documents(flat), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(flat):
        raise InvalidInputError(
            f"embedder {embedder.name!r} returned {vectors.shape} for {len(flat)} texts; "
            "it must return one vector per text"
        )
    out, start = {}, 0
    for item, group in zip(items, texts, strict=True):
        out[item.id] = Embedding(vectors[start : start + len(group)].mean(axis=0), digest(group))
        start += len(group)
    return out
