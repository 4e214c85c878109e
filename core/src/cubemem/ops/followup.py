"""What follows a write: extraction of facts from raw turns, consolidation of new facts,
session summaries (``cubemem.ops.summarize``).

After a background add each step is its own durable scheduler task, queued in the same step
that acknowledges the add (retried with backoff, dead-lettered with its error, replayable).
After a synchronous add they run inline, and a failure raises ``FollowUpError`` once the
memories themselves are stored. Both handlers are idempotent: a fact's id is derived from the
turns it came from and its text, so a retried extraction stores each fact once; a memory
already merged is no longer a consolidation candidate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Literal

from cubemem.errors import BackendUnavailableError, FollowUpError
from cubemem.model import MemoryItem, Scope, Status
from cubemem.ops import decide
from cubemem.ops.consolidate import consolidate, mergeable
from cubemem.ops.context import Context
from cubemem.ops.create import new_item
from cubemem.ops.summarize import summarize

Step = Literal["extract", "consolidate", "summarize"]

_FACT_NAMESPACE = uuid.UUID("2b0e4a7c-5d1f-4c8e-9a3b-7f6d2e1c0b94")


def pending(ctx: Context, items: Sequence[MemoryItem]) -> list[tuple[Step, list[str]]]:
    """The follow-up steps these newly stored memories call for, with the ids each takes."""
    steps: list[tuple[Step, list[str]]] = []
    if ctx.extractor is not None:
        turns = [i.id for i in items if i.provenance.source == "message"]
        if turns:
            steps.append(("extract", turns))
    if ctx.settings.consolidate:
        facts = [i.id for i in items if mergeable(i)]
        if facts:
            steps.append(("consolidate", facts))
    if ctx.summarizer is not None:
        turns = [
            i.id for i in items if i.provenance.source == "message" and i.scope.session is not None
        ]
        if turns:
            steps.append(("summarize", turns))
    return steps


def run(ctx: Context, step: Step, ids: Sequence[str]) -> list[MemoryItem]:
    """Run one step; returns the memories it created (whose own follow-ups come next)."""
    if step == "extract":
        return extract(ctx, ids)
    if step == "summarize":
        return summarize(ctx, ids)
    consolidate(ctx, ids)
    return []


def run_inline(ctx: Context, items: Sequence[MemoryItem]) -> None:
    """Every follow-up of ``items`` now, in this thread (the synchronous write path)."""
    steps = pending(ctx, items)
    while steps:
        step, ids = steps.pop(0)
        try:
            created = run(ctx, step, ids)
        except Exception as exc:
            stored = [i.id for i in items]
            raise FollowUpError(
                f"{len(stored)} memories were stored, but the {step} step after them failed "
                f"({type(exc).__name__}: {exc}). Nothing stored was lost; run the step again "
                f"with cube.{step}({ids!r}), or write with wait=False to have the scheduler "
                "retry it",
                stored,
            ) from exc
        steps += pending(ctx, created)


def extract(ctx: Context, ids: Sequence[str]) -> list[MemoryItem]:
    """Hand raw turns to the context's extractor and store the facts it returns.

    A fact inherits what its turns share of their scope and cites their message ids unless
    it names its own; it is stored once however often this runs for the same turns."""
    if ctx.extractor is None:
        raise BackendUnavailableError(
            "no extractor is set where this extract step runs; set "
            "cube.maintenance.extractor in the worker process, then replay the task "
            "(cubemem scheduler retry)"
        )
    order = {id_: n for n, id_ in enumerate(dict.fromkeys(ids))}
    turns = sorted(
        (
            t
            for t in ctx.store.get(list(order))
            if t.provenance.source == "message" and t.status is Status.ACTIVE
        ),
        key=lambda t: order[t.id],  # the conversation's order, as the turns were added
    )
    if not turns:
        return []
    scope = _shared_scope(turns)
    cited = list(dict.fromkeys(s for t in turns for s in t.provenance.source_ids))
    origin = sorted(t.id for t in turns)
    facts: list[MemoryItem] = []
    for raw in ctx.extractor(turns):
        fact = new_item(ctx, raw, scope, [], {}, source="extract")
        fact = fact.model_copy(
            update={
                "id": uuid.uuid5(_FACT_NAMESPACE, json.dumps([origin, fact.content])).hex,
                "parent_id": turns[0].id if len(turns) == 1 else None,
                "provenance": fact.provenance.model_copy(
                    update={"source_ids": fact.provenance.source_ids or cited}
                ),
            }
        )
        facts.append(_authored(fact, turns))
    if not ctx.store.get([t.id for t in turns]):  # forgotten while the model read them
        return []
    return decide.place(ctx, facts, ctx.decider or getattr(ctx.extractor, "decider", None))


def _authored(fact: MemoryItem, turns: Sequence[MemoryItem]) -> MemoryItem:
    """A fact read from one agent's turns is that agent's, at their lowest trust."""
    authors = {t.changed_by for t in turns}
    if len(authors) != 1 or None in authors:
        return fact
    author = authors.pop()
    trust = min([fact.provenance.trust, *(t.provenance.trust for t in turns)])
    provenance = fact.provenance.model_copy(update={"author_agent": author, "trust": trust})
    return fact.model_copy(update={"provenance": provenance, "changed_by": author})


def _shared_scope(turns: Sequence[MemoryItem]) -> Scope:
    """Each of user, agent and session where all the turns agree on it."""
    first = turns[0].scope
    return Scope(
        **{
            field: getattr(first, field)
            for field in ("user", "agent", "session")
            if all(getattr(t.scope, field) == getattr(first, field) for t in turns)
        }
    )
