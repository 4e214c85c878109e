"""What an agent's reads return (``AgentCube.run`` dispatches here): memories within its
grant's scope; never another agent's quarantined memory (or quarantined version) unless it
administers the cube; the audit log of what lies in an admin's scope."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from cubemem.access import AuditEntry, Grant
from cubemem.cube import operations as op
from cubemem.model import MemoryItem, Status
from cubemem.ops import inputs
from cubemem.shared.view import HANDLERS, WIDTH, AgentCube

_AUDIT_PAGE = 500


@HANDLERS.runs(op.Search)
def _search(cube: AgentCube, o: op.Search, grant: Grant) -> Any:
    parsed = cube._filters(o.filters, grant)
    wider = inputs.positive_int(o.k, "k") + (WIDTH if cube._hides_quarantine(parsed, grant) else 0)
    found = cube.cube.run(replace(o, k=wider, filters=parsed))
    return [r for r in found if cube._sees(r.item, grant)][: o.k]


@HANDLERS.runs(op.Entities, op.Relations, op.Neighbourhood)
def _graph(cube: AgentCube, o: op.Entities | op.Relations | op.Neighbourhood, grant: Grant) -> Any:
    """The graph of the memories the agent may see: its grant's scope, and no quarantined
    memory unless it administers the cube (its own held ones are not shown to it either)."""
    parsed = cube._filters(o.filters, grant)
    if cube._hides_quarantine(parsed, grant):
        kept = [s for s in parsed.status if s is not Status.QUARANTINED]
        parsed = parsed.model_copy(update={"status": kept or [Status.ACTIVE]})
    fenced: op.Operation[Any] = replace(o, filters=parsed)
    return cube.cube.run(fenced)


@HANDLERS.runs(op.Get)
def _get(cube: AgentCube, o: op.Get, grant: Grant) -> MemoryItem:
    return cube._visible(inputs.memory_id(o.id), grant)


@HANDLERS.runs(op.History)
def _history(cube: AgentCube, o: op.History, grant: Grant) -> list[MemoryItem]:
    cube._visible(inputs.memory_id(o.id), grant)
    return [v for v in cube.cube.history(o.id) if cube._sees(v, grant)]


@HANDLERS.runs(op.List)
def _list(cube: AgentCube, o: op.List, grant: Grant) -> list[MemoryItem]:
    parsed = cube._filters(o.filters, grant)
    if not cube._hides_quarantine(parsed, grant):
        return cube.cube.list(parsed, limit=o.limit, offset=o.offset)
    seen = (i for i in cube.cube.iter(parsed) if cube._sees(i, grant))
    return [i for n, i in enumerate(seen) if o.offset <= n < o.offset + o.limit]


@HANDLERS.runs(op.Count)
def _count(cube: AgentCube, o: op.Count, grant: Grant) -> int:
    parsed = cube._filters(o.filters, grant)
    if not cube._hides_quarantine(parsed, grant):
        return cube.cube.count(parsed)
    return sum(1 for i in cube.cube.iter(parsed) if cube._sees(i, grant))


@HANDLERS.runs(op.Lookup)
def _lookup(cube: AgentCube, o: op.Lookup, grant: Grant) -> MemoryItem | None:
    item = cube.cube.lookup(o.namespace, o.key)
    return item if item is not None and cube._sees(item, grant) else None


@HANDLERS.runs(op.Namespaces)
def _namespaces(cube: AgentCube, o: op.Namespaces, grant: Grant) -> Any:
    return cube.cube.namespaces(o.prefix, filters=cube._filters(o.filters, grant))


@HANDLERS.runs(op.Stats)
def _stats(cube: AgentCube, o: op.Stats, grant: Grant) -> dict[str, Any]:
    return cube.cube.stats()


@HANDLERS.runs(op.Audit)
def _audit_log(cube: AgentCube, o: op.Audit, grant: Grant) -> list[AuditEntry]:
    """The cube's audit log; an admin whose grant has a scope sees the entries about
    memories in that scope and its own actions, nothing else."""
    limit, offset = inputs.positive_int(o.limit, "limit"), o.offset
    if grant.scope is None:
        return cube._access.audit(cube=cube.name, memory_id=o.memory_id, limit=limit, offset=offset)
    shown = _in_view(cube, _pages(cube, o.memory_id), grant)
    return list(itertools.islice(shown, offset, offset + limit))


def _pages(cube: AgentCube, memory_id: str | None) -> Iterator[list[AuditEntry]]:
    start = 0
    while page := cube._access.audit(
        cube=cube.name, memory_id=memory_id, limit=_AUDIT_PAGE, offset=start
    ):
        yield page
        start += len(page)


def _in_view(
    cube: AgentCube, pages: Iterator[list[AuditEntry]], grant: Grant
) -> Iterator[AuditEntry]:
    """The entries an admin scoped by ``grant`` may read: its own actions, and those about a
    memory in its scope (one store read per page of the log)."""
    for page in pages:
        ids = list({e.memory_id for e in page if e.memory_id is not None})
        seen = {i.id for i in cube.cube.maintenance.store.get(ids) if cube._sees(i, grant)}
        yield from (e for e in page if e.agent == cube.agent.name or e.memory_id in seen)
