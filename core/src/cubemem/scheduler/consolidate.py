"""Consolidation: near-duplicate facts become one memory with a new version; nothing is lost.

A candidate pair must be close in meaning (cosine of the stored vectors) *and* in wording
(word overlap), share the same owner, and both be plain facts (conversation turns and keyed
memories are never merged). The surviving memory (the older one) gets a new version that lists the
merged memory in ``merged_from``; the merged memory is archived with ``superseded_by`` set, so
its text, its history and every source id stay in the cube. ``undo_merge`` reverses it.

What text the survivor keeps is a ``MergePolicy``: by default the newer text (it is the fresher
statement of the same fact). The LLM extraction step plugs in a policy that decides with a
model (merge, keep both, or rewrite).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from cubemem.model import Filters, MemoryItem, Status, utcnow

if TYPE_CHECKING:
    from cubemem.cube import MemCube

_WORD = re.compile(r"\w+")
EXACT_LIMIT = 5_000  # candidates scored exactly; beyond, the vector index proposes them
NEAREST_POOL = 200


@dataclass(frozen=True)
class MergeDecision:
    merge: bool
    content: str | None = None  # the survivor's new text; None keeps the policy default


class MergePolicy(Protocol):
    def decide(self, existing: MemoryItem, new: MemoryItem) -> MergeDecision: ...


class NewerTextWins:
    """Merge; the survivor takes the newer text."""

    def decide(self, existing: MemoryItem, new: MemoryItem) -> MergeDecision:
        return MergeDecision(merge=True, content=new.content)


@dataclass(frozen=True)
class Merge:
    survivor: str
    merged: str
    similarity: float
    overlap: float


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' lower-cased word sets."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def mergeable(item: MemoryItem) -> bool:
    return (
        item.status is Status.ACTIVE
        and item.superseded_by is None
        and item.namespace is None
        and item.provenance.source != "message"
    )


def consolidate(
    cube: MemCube,
    ids: Sequence[str],
    *,
    similarity: float,
    overlap: float,
    policy: MergePolicy | None = None,
) -> list[Merge]:
    """Merge each of ``ids`` with its near-duplicates until none is left (a fixed point: the
    survivor of a merge is looked at again, since its new text may match others)."""
    policy = policy or NewerTextWins()
    store = cube._store
    merges: list[Merge] = []
    work = list(dict.fromkeys(ids))
    while work:
        id_ = work.pop(0)
        fresh = store.get([id_])  # read now: an earlier merge in this loop may have changed it
        if not fresh or not mergeable(item := fresh[0]):
            continue
        owner = (
            Filters(user=item.scope.user) if item.scope.user else Filters(agent=item.scope.agent)
        )
        candidates = [i for i in store.match_ids(owner, now=utcnow()) if i != item.id]
        if not candidates:
            continue
        found, matrix = store.vectors([item.id])
        if not found:
            continue
        vector = matrix[0]
        if len(candidates) > EXACT_LIMIT:  # a big owner: ask the index, keep the owner's
            allowed = set(candidates)
            hits = [h for h in store.nearest(vector, NEAREST_POOL, None) if h[0] in allowed]
            candidates = [h[0] for h in hits]
        found, matrix = store.vectors(candidates)
        if not found:
            continue
        scores = matrix @ vector
        found = [item.id, *found]  # keep positions aligned with the loop below
        for pos in np.argsort(-scores, kind="stable"):
            score = float(scores[pos])
            if score < similarity:
                break
            others = store.get([found[1 + pos]])
            if not others or not mergeable(other := others[0]):
                continue
            lexical = word_overlap(item.content, other.content)
            if lexical < overlap:
                continue
            survivor, merged = (
                (other, item)
                if other.provenance.created_at <= item.provenance.created_at
                else (item, other)
            )
            decision = policy.decide(survivor, merged)
            if not decision.merge:
                continue
            _apply(cube, survivor, merged, decision.content or merged.content)
            merges.append(Merge(survivor.id, merged.id, score, lexical))
            work.append(survivor.id)  # every merge retires one memory, so this ends
            break
    return merges


def _apply(cube: MemCube, survivor: MemoryItem, merged: MemoryItem, content: str) -> None:
    now = utcnow()
    provenance = survivor.provenance.model_copy(
        update={
            "source_ids": list(
                dict.fromkeys([*survivor.provenance.source_ids, *merged.provenance.source_ids])
            )
        }
    )
    new = survivor.model_copy(
        update={
            "content": content,
            "version": survivor.version + 1,
            "merged_from": [*survivor.merged_from, merged.id],
            "tags": list(dict.fromkeys([*survivor.tags, *merged.tags])),
            "provenance": provenance,
            "updated_at": now,
        }
    )
    gone = merged.model_copy(
        update={"status": Status.ARCHIVED, "superseded_by": survivor.id, "updated_at": now}
    )
    embeddings = cube._embed([new]) if content != survivor.content else {}
    cube._store.write([new, gone], embeddings)


def undo_merge(cube: MemCube, merged_id: str) -> tuple[MemoryItem, MemoryItem]:
    """Bring a merged memory back and take its contribution out of the survivor.

    The survivor's text and tags return to what they were before this merge unless they
    changed since; its source ids become its own plus those of the memories still merged in.
    """
    from cubemem.errors import InvalidInputError

    merged = cube.get(merged_id)
    if merged.superseded_by is None:
        raise InvalidInputError(f"memory {merged_id} was not merged into another; nothing to undo")
    survivor = cube.get(merged.superseded_by)
    if merged_id not in survivor.merged_from:
        raise InvalidInputError(f"memory {survivor.id} does not list {merged_id} as merged in")
    history = cube.history(survivor.id)
    # the version where this merge happened: the latest one that added merged_id
    at = next(
        v
        for i, v in reversed(list(enumerate(history)))
        if merged_id in v.merged_from and (i == 0 or merged_id not in history[i - 1].merged_from)
    )
    before = next((v for v in history if v.version == at.version - 1), None)
    remaining = [i for i in survivor.merged_from if i != merged_id]
    sources = list(history[0].provenance.source_ids)
    for other in cube._store.get(remaining):
        sources += other.provenance.source_ids
    updates: dict[str, object] = {
        "version": survivor.version + 1,
        "updated_at": utcnow(),
        "merged_from": remaining,
        "provenance": survivor.provenance.model_copy(
            update={"source_ids": list(dict.fromkeys(sources))}
        ),
    }
    if before is not None:
        if survivor.content == at.content:
            updates["content"] = before.content
        if survivor.tags == at.tags:
            updates["tags"] = before.tags
    restored_survivor = survivor.model_copy(update=updates)
    restored = merged.model_copy(
        update={"status": Status.ACTIVE, "superseded_by": None, "updated_at": utcnow()}
    )
    embeddings = (
        cube._embed([restored_survivor]) if restored_survivor.content != survivor.content else {}
    )
    cube._store.write([restored_survivor, restored], embeddings)
    return restored_survivor, restored
