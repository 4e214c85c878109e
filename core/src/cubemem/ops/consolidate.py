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

import numpy as np

from cubemem.errors import ConflictError, InvalidInputError
from cubemem.model import Filters, MemoryItem, Status
from cubemem.ops.context import Context, MergeDecision, MergePolicy

__all__ = [
    "Merge",
    "MergeDecision",
    "MergePolicy",
    "NewerTextWins",
    "consolidate",
    "mergeable",
    "undo_merge",
    "word_overlap",
]
from cubemem.ops.write import MAX_RETRIES, backoff, get, reindex, revised

_WORD = re.compile(r"\w+")
EXACT_LIMIT = 5_000  # candidates scored exactly; beyond, the vector index proposes them
NEAREST_POOL = 200


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
        and item.provenance.source not in ("message", "summary")
    )


def consolidate(ctx: Context, ids: Sequence[str]) -> list[Merge]:
    """Merge each of ``ids`` with its near-duplicates until none is left (a fixed point: the
    survivor of a merge is looked at again, since its new text may match others).

    Idempotent: a memory already merged is no longer a candidate. A merge whose memories
    changed under it is decided again from their new versions."""
    policy = ctx.merge_policy or NewerTextWins()
    similarity, overlap = ctx.settings.merge_similarity, ctx.settings.merge_overlap
    store = ctx.store
    merges: list[Merge] = []
    work = list(dict.fromkeys(ids))
    conflicts = 0
    while work:
        id_ = work.pop(0)
        fresh = store.get([id_])  # read now: an earlier merge in this loop may have changed it
        if not fresh or not mergeable(item := fresh[0]):
            continue
        owner = (
            Filters(user=item.scope.user) if item.scope.user else Filters(agent=item.scope.agent)
        )
        candidates = [i for i in store.match_ids(owner, now=ctx.clock()) if i != item.id]
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
            try:
                _apply(ctx, survivor, merged, decision.content or merged.content)
            except ConflictError:
                conflicts += 1
                if conflicts > MAX_RETRIES:
                    raise
                work.append(item.id)  # decide again on the versions now stored
                break
            merges.append(Merge(survivor.id, merged.id, score, lexical))
            work.append(survivor.id)  # every merge retires one memory, so this ends
            break
    return merges


def _apply(ctx: Context, survivor: MemoryItem, merged: MemoryItem, content: str) -> None:
    """Both rows change together, each only if still at the version the decision read."""
    provenance = survivor.provenance.model_copy(
        update={
            "source_ids": list(
                dict.fromkeys([*survivor.provenance.source_ids, *merged.provenance.source_ids])
            )
        }
    )
    new = revised(
        ctx,
        survivor,
        {
            "content": content,
            "merged_from": [*survivor.merged_from, merged.id],
            "tags": list(dict.fromkeys([*survivor.tags, *merged.tags])),
            "provenance": provenance,
        },
    )
    gone = revised(ctx, merged, {"status": Status.ARCHIVED, "superseded_by": survivor.id})
    ctx.store.revise(
        [(new, survivor.version), (gone, merged.version)], reindex(ctx, [(survivor, new)])
    )
    ctx.working.changed([survivor.id], "updated")
    ctx.working.changed([merged.id], "deleted")


def undo_merge(ctx: Context, merged_id: str) -> tuple[MemoryItem, MemoryItem]:
    """Bring a merged memory back and take its contribution out of the survivor.

    The survivor's text and tags return to what they were before this merge unless they
    changed since; its source ids become its own plus those of the memories still merged in.
    """
    for attempt in range(MAX_RETRIES):
        merged = get(ctx, merged_id)
        if merged.superseded_by is None:
            raise InvalidInputError(
                f"memory {merged_id} was not merged into another; nothing to undo"
            )
        survivor = get(ctx, merged.superseded_by)
        if merged_id not in survivor.merged_from:
            raise InvalidInputError(f"memory {survivor.id} does not list {merged_id} as merged in")
        restored_survivor = _without(ctx, survivor, merged_id)
        restored = revised(ctx, merged, {"status": Status.ACTIVE, "superseded_by": None})
        try:
            ctx.store.revise(
                [(restored_survivor, survivor.version), (restored, merged.version)],
                reindex(ctx, [(survivor, restored_survivor)]),
            )
        except ConflictError:
            backoff(attempt)
            continue
        ctx.working.changed([survivor.id], "updated")
        return restored_survivor, restored
    raise ConflictError(f"memory {merged_id} kept changing; nothing was undone", [merged_id])


def _without(ctx: Context, survivor: MemoryItem, merged_id: str) -> MemoryItem:
    """The survivor's next version with one merge taken out."""
    history = ctx.store.versions(survivor.id)
    # the version where this merge happened: the latest one that added merged_id
    at = next(
        v
        for i, v in reversed(list(enumerate(history)))
        if merged_id in v.merged_from and (i == 0 or merged_id not in history[i - 1].merged_from)
    )
    before = next((v for v in history if v.version == at.version - 1), None)
    remaining = [i for i in survivor.merged_from if i != merged_id]
    sources = list(history[0].provenance.source_ids)
    for other in ctx.store.get(remaining):
        sources += other.provenance.source_ids
    updates: dict[str, object] = {
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
    return revised(ctx, survivor, updates)
