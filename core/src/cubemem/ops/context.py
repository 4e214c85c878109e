"""The context every operation takes: one cube's store, embedder, retriever, settings, clock.

Operations are functions of a ``Context``, not methods of ``MemCube``, so the facade, the
scheduler's workers and the MemoryOS all run the same code and none reaches into another's
private state. A context holds no policy of its own beyond the two hooks a cube can set:
the ``extractor`` (raw turns → facts) and the ``merge_policy`` of consolidation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from cubemem.embed import Embedder, check_vectors
from cubemem.extract import Decider
from cubemem.model import MemoryInput, MemoryItem, utcnow
from cubemem.ops.working import WorkingMemory
from cubemem.retrieve import HybridRetriever, embed_items
from cubemem.settings import Settings
from cubemem.store.base import Embedding, MemoryStore


@dataclass(frozen=True)
class MergeDecision:
    """What a ``MergePolicy`` decided: merge or not, and the survivor's text."""

    merge: bool
    content: str | None = None  # the survivor's new text; None keeps the policy default


class MergePolicy(Protocol):
    """Decides what text a consolidation keeps (``cubemem.ops.consolidate``)."""

    def decide(self, existing: MemoryItem, new: MemoryItem) -> MergeDecision: ...


ContentLike = str | MemoryInput | dict[str, Any]
Extractor = Callable[[Sequence[MemoryItem]], Sequence[ContentLike]]
"""Raw conversation turns in, facts out (strings, ``MemoryInput``s or their dicts)."""


@dataclass
class Context:
    """One cube as the operations see it."""

    cube_id: str
    name: str
    dimension: int
    store: MemoryStore
    embedder: Embedder
    settings: Settings
    retriever: HybridRetriever
    working: WorkingMemory
    clock: Callable[[], datetime] = utcnow
    extractor: Extractor | None = None
    merge_policy: MergePolicy | None = None
    decider: Decider | None = None
    summarizer: Any = None
    """A ``cubemem.summarize.SessionSummarizer`` (or alike): session summaries follow writes."""

    @classmethod
    def build(
        cls,
        *,
        cube_id: str,
        name: str,
        dimension: int,
        store: MemoryStore,
        embedder: Embedder,
        settings: Settings,
    ) -> Context:
        return cls(
            cube_id=cube_id,
            name=name,
            dimension=dimension,
            store=store,
            embedder=embedder,
            settings=settings,
            retriever=HybridRetriever(store, embedder),
            working=WorkingMemory(settings.working_memory_size),
        )

    def embed(self, items: Sequence[MemoryItem]) -> dict[str, Embedding]:
        """One checked vector per memory (a wrong shape or NaN raises before anything is
        written)."""
        if not items:
            return {}
        embeddings = embed_items(self.embedder, items)
        check_vectors(
            np.stack([e.vector for e in embeddings.values()]),
            len(items),
            self.dimension,
            self.embedder.name,
        )
        return embeddings
