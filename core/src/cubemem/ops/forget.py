"""``forget``: erase memories for good, with what was derived from them.

What is asked — ``ids``, plus every memory that the scope (``user``/``agent``/``session``) and
``filters`` match together, in any status — grows by the changes of fact around it (a fact
superseded by or superseding one forgotten is the same fact at another time) and by what
was derived: an extracted fact or a session summary citing only forgotten turns is erased
too; a fact other memories also support keeps its text and loses the citations. Each is then
purged (every version, vector and index entry; the entity graph follows the change feed, so
an entity mentioned only there is gone). The embedded engine's SQLite files run with
``secure_delete``, so a purged row's bytes are overwritten rather than left in free pages;
the WAL is folded into the database when the cube closes. The report names ids only.

A forget is journalled before anything is erased: ``forgetting/<id>.json`` in the cube's folder
lists what it erases and which citations it removes (ids only). A process killed in the middle
leaves the journal, and the next ``MemCube.open`` finishes the forget (``resume``); every step
can run twice.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cubemem import access
from cubemem.errors import InvalidInputError, NotFoundError
from cubemem.model import Filters, MemoryItem, Status
from cubemem.model.governance import Forgotten
from cubemem.ops import inputs, redaction
from cubemem.ops.context import Context
from cubemem.ops.write import revise

DERIVED = ("extract", "summary")
"""Sources of memories derived from conversation turns."""
PROPOSAL = "proposal"
"""The source of a held change to a memory (``write.propose``): erased with that memory."""
_ANY_STATUS = [s.value for s in Status]


def forget(
    ctx: Context,
    ids: Sequence[str] | None = None,
    *,
    user: str | None = None,
    agent: str | None = None,
    session: str | None = None,
    filters: Any = None,
    fence: Filters | None = None,
    audit: dict[str, Any] | None = None,
) -> Forgotten:
    """``fence`` (a scoped admin's grant): the changes of fact and derived memories followed
    stay inside it; a derived memory outside it only loses its citations of what was erased.
    ``audit``: more detail for the audit record (a retention rule's name)."""
    asked = _asked(ctx, ids, user, agent, session, filters)
    everything = _all(ctx)
    inside = _inside(ctx, fence)
    by_id = {i.id: i for i in everything if inside is None or i.id in inside}
    chosen = _with_lineage(asked, by_id)
    cited = {s for i in chosen.values() for s in (i.provenance.source_ids or [i.id])}
    cited |= set(chosen)
    derived: list[str] = []
    uncited: list[str] = []
    for item in everything:
        if item.id in chosen or item.provenance.source not in (*DERIVED, PROPOSAL):
            continue
        sources = set(item.provenance.source_ids)
        if not sources & cited:
            continue
        # a held change of an erased memory carries its text (a delete's, verbatim): it goes
        if (sources <= cited or item.provenance.source == PROPOSAL) and item.id in by_id:
            chosen[item.id] = item
            derived.append(item.id)
        else:
            uncited.append(item.id)
    done = Forgotten(ids=sorted(chosen), derived=sorted(derived), uncited=sorted(uncited))
    journal = _journal(ctx, done, cited)
    _apply(ctx, done, cited, compact=False)
    late = _late(ctx, cited, set(done.ids))  # derived while this forget ran (an extraction)
    if late and fence is not None:
        now_inside = _inside(ctx, fence) or set()
        late = [i for i in late if i in now_inside]
    if late:
        ctx.store.purge(late)
        done = done.model_copy(
            update={"ids": sorted([*done.ids, *late]), "derived": sorted([*done.derived, *late])}
        )
    if done.ids:
        ctx.store.compact_vectors()  # vectors the index only marked deleted leave its files
        ctx.retriever.forget()  # and the search index, whose file and vocabulary held them
    if journal is not None:
        journal.unlink(missing_ok=True)
    if ctx.audit is not None and access.current_actor() is None:  # an agent's: audited by it
        ctx.audit(
            "forget",
            {"count": done.count, "ids": done.ids, "derived": done.derived} | (audit or {}),
        )
    return done


def resume(ctx: Context) -> list[Forgotten]:
    """Finish the forgets a killed process left journalled in the cube's folder."""
    folder = ctx.folder / JOURNAL if ctx.folder is not None else None
    finished = []
    for journal in sorted(folder.glob("*.json")) if folder is not None else ():
        try:
            record = json.loads(journal.read_text())
            done, cited = Forgotten.model_validate(record["forgotten"]), set(record["cited"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written: the forget it was for erased nothing yet
        _apply(ctx, done, cited)
        journal.unlink(missing_ok=True)
        finished.append(done)
    return finished


JOURNAL = "forgetting"
"""The folder of a cube where forgets in progress are journalled."""


def _journal(ctx: Context, done: Forgotten, cited: set[str]) -> Path | None:
    """Write the forget's plan (ids only), durably, before anything is erased."""
    if ctx.folder is None or not done.ids:
        return None
    folder = ctx.folder / JOURNAL
    folder.mkdir(exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.json"
    part = path.with_suffix(".part")
    record = {"forgotten": done.model_dump(mode="json"), "cited": sorted(cited)}
    with open(part, "w", encoding="utf-8") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    return path


def _apply(ctx: Context, done: Forgotten, cited: set[str], *, compact: bool = True) -> None:
    """Erase ``done.ids`` and remove the ``cited`` ids from the kept facts; safe to repeat."""
    erased = done.ids
    for start in range(0, len(erased), 500):
        ctx.store.purge(erased[start : start + 500])
    ctx.working.changed(erased, "deleted")
    if erased and compact:
        ctx.store.compact_vectors()  # vectors the index only marked deleted leave its files
        ctx.retriever.forget()
    for fact in ctx.store.get(done.uncited):
        left = [s for s in fact.provenance.source_ids if s not in cited]
        if left != fact.provenance.source_ids:
            provenance = fact.provenance.model_copy(update={"source_ids": left})
            revise(ctx, fact.id, {"provenance": provenance}, reason="a source was forgotten")


def _asked(
    ctx: Context,
    ids: Sequence[str] | None,
    user: str | None,
    agent: str | None,
    session: str | None,
    filters: Any,
) -> list[MemoryItem]:
    scope = {"user": user, "agent": agent, "session": session}
    for name, value in scope.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidInputError(f"{name} must be a non-empty str, got {value!r}")
    chosen = {k: v for k, v in scope.items() if v is not None}
    if ids is None and not chosen and filters is None:
        raise InvalidInputError(
            "forget needs what to forget: ids=, user=, agent=, session= or filters= "
            "(forget() alone would erase the whole cube, and is refused)"
        )
    found: list[MemoryItem] = []
    if ids is not None:
        wanted = inputs.memory_ids(ids)
        got = {i.id: i for i in ctx.store.get(wanted)}
        missing = [i for i in wanted if i not in got]
        if missing:
            raise NotFoundError(
                f"no memory {missing[0]!r} in this cube; nothing was forgotten", missing
            )
        found += got.values()
    if chosen or filters is not None:
        given = (
            filters.model_dump(exclude_defaults=True)
            if isinstance(filters, Filters)
            else dict(filters or {})
        )
        if not isinstance(given, dict):
            raise InvalidInputError(f"filters must be a dict or Filters, got {filters!r}")
        for name, value in chosen.items():
            if given.get(name) not in (None, value):
                raise InvalidInputError(f"{name}= and filters[{name!r}] disagree; give one")
            given[name] = value
        given.setdefault("status", _ANY_STATUS)
        given.setdefault("include_expired", True)
        matched = ctx.store.match_ids(Filters.parse(given), now=ctx.clock())
        named = redaction.identified_filters(ctx, given)  # names as a redaction stores them
        if named != given:  # ... and as they were stored before the cube had a policy
            again = ctx.store.match_ids(Filters.parse(named), now=ctx.clock())
            matched = sorted({*matched, *again})
        found += ctx.store.get(matched)
    return found


def _late(ctx: Context, cited: set[str], erased: set[str]) -> list[str]:
    """Derived memories that cite only what was forgotten and were stored after it was read."""
    return sorted(
        i.id
        for i in _all(ctx)
        if i.id not in erased
        and i.provenance.source in DERIVED
        and i.provenance.source_ids
        and set(i.provenance.source_ids) <= cited
    )


def _all(ctx: Context) -> list[MemoryItem]:
    every = Filters.parse({"status": _ANY_STATUS, "include_expired": True})
    return ctx.store.get(ctx.store.match_ids(every, now=ctx.clock()))


def _inside(ctx: Context, fence: Filters | None) -> set[str] | None:
    """The ids of every memory inside ``fence`` (any status), or None for no fence."""
    if fence is None:
        return None
    everything = Filters.everything()
    wide = fence.model_copy(update={"status": everything.status, "include_expired": True})
    return set(ctx.store.match_ids(wide, now=ctx.clock()))


def _with_lineage(asked: list[MemoryItem], by_id: dict[str, MemoryItem]) -> dict[str, MemoryItem]:
    """``asked`` and the changes of fact chained to them (``superseded_by`` either way)."""
    before = {i.superseded_by: i for i in by_id.values() if i.superseded_by}
    chosen: dict[str, MemoryItem] = {}
    todo = list(asked)
    while todo:
        item = todo.pop()
        if item.id in chosen:
            continue
        chosen[item.id] = item
        nxt = by_id.get(item.superseded_by or "")
        prev = before.get(item.id)
        todo += [i for i in (nxt, prev) if i is not None and i.id not in chosen]
    return chosen
