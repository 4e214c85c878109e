"""Update decisions: where a newly extracted fact goes among what the cube already believes.

Each new fact is compared with its owner's nearest current facts (never with raw turns):

- ``ADD``: stored as a new memory;
- ``DUPLICATE``: nothing new is stored; the existing fact gains the new source ids (a new
  version, so the history shows when it was heard again);
- ``UPDATE``: the existing fact gets the new text as its next version (a refinement: the old
  text stays in its history, the fact's valid time is unchanged);
- ``CONTRADICT``: a change in the world (``cubemem.ops.timeline.succeed``): the new fact is
  stored, valid from when it was said, and the old one becomes ``superseded`` (with
  ``valid_to`` and ``superseded_by``) — found by ``search(as_of=...)`` before then and with
  ``include_superseded=True``.

The decision and its reason are stored on the version written. A ``Decider`` (an LLM, see
``cubemem.extract.LLMDecider``) decides when the cube has one; otherwise ``similarity_rule``:
the same text or a cosine ≥ 0.92 is a duplicate; the same subject and kind with a cosine ≥
0.7 is an update; anything else is added. Every write is a compare-and-set revision: a
decision made on a version someone else changed meanwhile is made again, never applied blind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from cubemem.errors import ConflictError
from cubemem.extract import Decider, DecisionKind, Verdict, similarity_rule
from cubemem.model import Filters, MemoryItem, Status, address_id
from cubemem.ops.context import Context
from cubemem.ops.timeline import succeed
from cubemem.ops.write import insert, revise

__all__ = ["CANDIDATES", "Decider", "DecisionKind", "Verdict", "candidates", "place",
           "similarity_rule"]  # fmt: skip

CANDIDATES = 5


def candidates(ctx: Context, fact: MemoryItem) -> list[tuple[MemoryItem, float]]:
    """The owner's current facts nearest to ``fact`` (turns and the fact itself excluded)."""
    owner = Filters.parse(fact.scope.owner_filter())
    hits = ctx.retriever.search(fact.content, 3 * CANDIDATES, owner, ctx.clock())
    items = {i.id: i for i in ctx.store.get([h.id for h in hits])}
    out = []
    for hit in hits:
        item = items.get(hit.id)
        if item is None or item.id == fact.id or item.provenance.source == "message":
            continue
        out.append((item, hit.dense if hit.dense is not None else 0.0))
    out.sort(key=lambda pair: -pair[1])
    return out[:CANDIDATES]


def place(ctx: Context, facts: Sequence[MemoryItem], decider: Decider | None) -> list[MemoryItem]:
    """Decide and write each fact; returns the memories created (ADD and CONTRADICT)."""
    created: list[MemoryItem] = []
    for fact in facts:
        if ctx.store.get([fact.id]):  # a retried extraction: this fact was placed already
            continue
        for _ in range(5):
            near = candidates(ctx, fact)
            verdict = (decider or similarity_rule)(fact, near)
            known = {item.id: item for item, _ in near}
            if verdict.decision != "ADD" and verdict.target not in known:
                verdict = Verdict("ADD", None, f"{verdict.reason} (unknown target: added)")
            try:
                created += _apply(ctx, fact, verdict, known)
                break
            except ConflictError:  # the target changed while we decided: decide again
                continue
        else:
            created += insert(ctx, [_tagged(fact, Verdict("ADD", None, "kept changing"), ctx)])
    return created


def _owned_id(fact: MemoryItem) -> str:
    """One id per owner and fact text: two extractions adding the same fact at once (two
    workers, two windows) write one memory, not two."""
    owner = [fact.scope.user, fact.scope.agent]
    return address_id(
        ("fact", *(o or "-" for o in owner)), " ".join(fact.content.casefold().split())
    )


def _add(ctx: Context, fact: MemoryItem, verdict: Verdict) -> list[MemoryItem]:
    tagged = _tagged(fact, verdict, ctx)
    owned = tagged.model_copy(update={"id": _owned_id(fact)})
    existing = ctx.store.get([owned.id])
    if existing and existing[0].status is Status.ACTIVE:
        same = Verdict("DUPLICATE", owned.id, "the same fact is already current")
        return _apply(ctx, fact, same, {owned.id: existing[0]})
    if existing:  # that text was superseded or deleted once: this is a fact of its own
        return insert(ctx, [tagged])
    created = insert(ctx, [owned])
    if not created:  # another writer added it this instant: record this as its duplicate
        raise ConflictError(f"fact {owned.id} was added concurrently", [owned.id])
    return created


def _tagged(fact: MemoryItem, verdict: Verdict, ctx: Context) -> MemoryItem:
    return fact.model_copy(
        update={
            "decision": verdict.decision,
            "decision_reason": verdict.reason[:500] or None,
            "valid_from": fact.provenance.occurred_at or ctx.clock(),
        }
    )


def _apply(
    ctx: Context, fact: MemoryItem, verdict: Verdict, known: dict[str, MemoryItem]
) -> list[MemoryItem]:
    if verdict.decision == "ADD":
        return _add(ctx, fact, verdict)
    target = known[verdict.target or ""]
    sources = list(dict.fromkeys([*target.provenance.source_ids, *fact.provenance.source_ids]))
    provenance = target.provenance.model_copy(update={"source_ids": sources})
    reason = verdict.reason[:500] or None
    if verdict.decision == "DUPLICATE":
        if sources == target.provenance.source_ids:
            return []  # heard again from the same turns: nothing to record
        revise(
            ctx,
            target.id,
            {"provenance": provenance, "decision": "DUPLICATE", "decision_reason": reason},
            expected_version=target.version,
            reason="duplicate",
        )
        return []
    if verdict.decision == "UPDATE":
        revise(
            ctx,
            target.id,
            {
                "content": fact.content,
                "provenance": provenance,
                "metadata": {**target.metadata, **fact.metadata},
                "decision": "UPDATE",
                "decision_reason": reason,
            },
            expected_version=target.version,
        )
        return []
    # CONTRADICT: a change in the world, as ``update(valid_from=...)`` records one: the new
    # fact is stored, true from when it was said, and the old one superseded then
    new = _tagged(fact, verdict, ctx)
    at = max(new.valid_since, target.valid_since + timedelta(microseconds=1))
    changes = {"decision": "CONTRADICT", "decision_reason": reason}
    return [succeed(ctx, target, new, at, changes)]
