"""The context every operation takes: one cube's store, embedder, retriever, settings, clock.

Operations are functions of a ``Context``, not methods of ``MemCube``, so the facade, the
scheduler's workers and the MemoryOS all run the same code and none reaches into another's
private state. A context holds no policy of its own beyond the two hooks a cube can set:
the ``extractor`` (raw turns → facts) and the ``merge_policy`` of consolidation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cubemem.embed import Embedder, check_vectors
from cubemem.extract import Decider
from cubemem.index_texts import embed_items
from cubemem.model import MemoryInput, MemoryItem, utcnow
from cubemem.ops.working import WorkingMemory
from cubemem.redact import Detector, PolicyFile
from cubemem.retrieve import HybridRetriever
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
    folder: Path | None = None
    """The cube's folder (where a forget keeps its journal; ``cubemem.ops.forget``)."""
    governance: PolicyFile = field(default_factory=lambda: PolicyFile(None))
    """The cube's redaction policy, as its manifest says now (``cubemem.ops.redaction``)."""
    pii_detectors: list[Detector] = field(default_factory=list)
    """More detectors of personal data (a NER engine), with the policy's built-in ones."""
    redactions: Counter[str] = field(default_factory=Counter)
    """What this process redacted in the cube, by kind (counts only)."""
    audit: Callable[[str, dict[str, Any]], None] | None = None
    """Records what the cube itself did (a forget, a retention expiry) in the audit log of the
    ``MemoryOS`` it belongs to: ``(action, detail)``, ids and counts only."""

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
        folder: Path | None = None,
    ) -> Context:
        return cls(
            folder=folder,
            governance=PolicyFile(folder),
            cube_id=cube_id,
            name=name,
            dimension=dimension,
            store=store,
            embedder=embedder,
            settings=settings,
            retriever=HybridRetriever(store, embedder, folder=folder, cube_id=cube_id),
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
