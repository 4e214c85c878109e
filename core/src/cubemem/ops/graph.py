"""Reading the entity graph (``cubemem.graph``): entities, relations and neighbourhoods,
over the memories a caller may see — the same filters, statuses and valid timeline as
search (``as_of``), so grants and quarantine apply as they do to search."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cubemem import access, limits
from cubemem.entities import KINDS, key
from cubemem.errors import InvalidInputError, NotFoundError
from cubemem.graph import Node
from cubemem.limits import shown
from cubemem.model import Filters, Status
from cubemem.model.graph import Entity, EntityLink, EntityRef, Neighbourhood, Relation
from cubemem.ops import inputs
from cubemem.ops.context import Context
from cubemem.searchindex import SearchIndex

FiltersLike = Filters | dict[str, Any] | None
MAX_IDS = 20


def _when(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class _View:
    """The graph and the visible slots of one read."""

    def __init__(self, index: SearchIndex, mask: np.ndarray) -> None:
        self.index, self.mask, self.graph = index, mask, index.graph

    def slots(self, node: Node) -> list[int]:
        return self.graph.visible(node.id, self.mask)

    def entity(self, node: Node) -> Entity | None:
        slots = self.slots(node)
        if not slots:
            return None
        start, end = self.index.valid_span(slots)
        members = [
            self.graph.nodes[m] for m in self.graph.members(node.id) if m in self.graph.nodes
        ]
        return Entity(
            id=node.id,
            name=node.name,
            kind=node.kind,
            aliases=sorted({a for m in members for a in m.names}),
            merged_from=[m.id for m in members[1:]],
            owner=node.owner,
            memories=len(slots),
            memory_ids=[self.index.ids[s] for s in sorted(slots, reverse=True)[:MAX_IDS]],
            valid_from=_when(start),
            valid_to=_when(end),
        )

    def ref(self, id_: str) -> EntityRef:
        return EntityRef(id=id_, name=self.graph.nodes[id_].name)

    def relations(self, id_: str) -> list[Relation]:
        """Every relation of ``id_`` through visible memories, the strongest first."""
        cited: dict[str, list[int]] = {}
        for slot in self.graph.visible(id_, self.mask):
            for other in self.graph.mentioned([slot]).get(slot, ()):
                if other != id_:
                    cited.setdefault(other, []).append(slot)
        out = []
        for other, slots in cited.items():
            start, end = self.index.valid_span(slots)
            out.append(
                Relation(
                    source=self.ref(id_),
                    target=self.ref(other),
                    kind=self.graph.relation_kind(id_, other, slots) or "mentioned_with",
                    weight=len(slots),
                    memory_ids=[self.index.ids[s] for s in sorted(slots, reverse=True)],
                    valid_from=_when(start),
                    valid_to=_when(end),
                )
            )
        out.sort(key=lambda r: (-r.weight, r.target.name))
        return out

    def find(self, entity: str) -> Node:
        """An entity by id, else by name (the one with most visible memories)."""
        if not isinstance(entity, str) or not entity.strip():
            raise InvalidInputError(f"entity must be an entity id or a name, got {shown(entity)}")
        limits.text(entity, "entity")
        node = self.graph.nodes.get(self.graph.current(entity))
        candidates = [node] if node is not None else self.named(entity)
        seen = [(len(self.slots(n)), n.id, n) for n in candidates]
        seen = [s for s in seen if s[0]]
        if not seen:
            raise NotFoundError(
                f"no entity {shown(entity)} in the memories you may see; cube.entities(query) "
                "lists them"
            )
        return max(seen, key=lambda s: (s[0], s[1]))[2]

    def aliases(self, node: Node) -> set[str]:
        """The name keys of ``node`` and of the entities merged into it."""
        members = [self.graph.nodes[m] for m in self.graph.members(node.id)]
        return {key(a) for m in members for a in m.names}

    def named(self, name: str) -> list[Node]:
        """Entities of that name or alias; else, for one word, those whose name starts with
        it ("Ana" for "Ana Souza")."""
        wanted = key(name)
        nodes = [n for n in self.graph.nodes.values() if self.graph.merged_into(n.id) is None]
        exact = [n for n in nodes if wanted in self.aliases(n)]
        if exact or " " in wanted:
            return exact
        return [n for n in nodes if key(n.name).split()[:1] == [wanted]]


def _read(
    ctx: Context,
    filters: FiltersLike,
    as_of: datetime | str | None,
) -> tuple[Filters, datetime, datetime | None]:
    valid_at = inputs.moment(as_of, "as_of")
    parsed = Filters.parse(filters)
    if valid_at is not None and Status.SUPERSEDED not in parsed.status:
        parsed = parsed.model_copy(update={"status": [*parsed.status, Status.SUPERSEDED]})
    return parsed, ctx.clock(), valid_at


def entities(
    ctx: Context,
    query: str | None = None,
    *,
    name: str | None = None,
    kind: str | None = None,
    filters: FiltersLike = None,
    as_of: datetime | str | None = None,
    limit: int = 20,
) -> list[Entity]:
    """Entities whose names hold every word of ``query`` (or are ``name``, in any case), of
    ``kind``, that visible memories mention — the most mentioned first."""
    limits.count(limit, "limit", minimum=1)
    if kind is not None and kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {list(KINDS)}, got {shown(kind)}")
    words = set(key(limits.text(query, "query")).split()) if query is not None else set()
    exact = key(limits.text(name, "name")) if name is not None else None
    parsed, now, valid_at = _read(ctx, filters, as_of)
    found = []
    with ctx.retriever.view(parsed, now, valid_at=valid_at) as (index, mask):
        view = _View(index, mask)
        for node in view.graph.nodes.values():
            if view.graph.merged_into(node.id) is not None:
                continue  # counted in the entity it was merged into
            keys = view.aliases(node)
            if exact is not None and exact not in keys:
                continue
            if words and not any(words <= set(k.split()) for k in keys):
                continue
            if kind is not None and node.kind != kind:
                continue
            entity = view.entity(node)
            if entity is not None:
                found.append(entity)
    found.sort(key=lambda e: (-e.memories, e.name, e.id))
    return found[:limit]


def relations(
    ctx: Context,
    entity: str,
    *,
    filters: FiltersLike = None,
    as_of: datetime | str | None = None,
    limit: int = 20,
) -> list[Relation]:
    """The relations of one entity (an id or a name), the strongest first."""
    limits.count(limit, "limit", minimum=1)
    parsed, now, valid_at = _read(ctx, filters, as_of)
    with ctx.retriever.view(parsed, now, valid_at=valid_at) as (index, mask):
        view = _View(index, mask)
        return view.relations(view.find(entity).id)[:limit]


def neighbourhood(
    ctx: Context,
    entity: str,
    *,
    hops: int = 2,
    filters: FiltersLike = None,
    as_of: datetime | str | None = None,
    limit: int = 50,
) -> Neighbourhood:
    """The entities within ``hops`` relations of one entity (breadth first, at most
    ``limit``) and the relations among them."""
    if isinstance(hops, bool) or not isinstance(hops, int) or not 1 <= hops <= 4:
        raise InvalidInputError(f"hops must be an int from 1 to 4, got {shown(hops)}")
    limits.count(limit, "limit", minimum=1)
    parsed, now, valid_at = _read(ctx, filters, as_of)
    with ctx.retriever.view(parsed, now, valid_at=valid_at) as (index, mask):
        view = _View(index, mask)
        center = view.find(entity)
        reached = [center.id]
        frontier = [center.id]
        relations: dict[tuple[str, str], Relation] = {}
        for _ in range(hops):
            ahead: Counter[str] = Counter()
            for id_ in frontier:
                for relation in view.relations(id_):
                    pair = tuple(sorted((relation.source.id, relation.target.id)))
                    relations.setdefault(pair, relation)  # type: ignore[arg-type]
                    if relation.target.id not in reached:
                        ahead[relation.target.id] += relation.weight
            frontier = [id_ for id_, _ in ahead.most_common(max(0, limit - len(reached)))]
            reached += frontier
        kept = set(reached)
        nodes = [view.entity(view.graph.nodes[i]) for i in reached]
        return Neighbourhood(
            center=nodes[0],
            entities=[n for n in nodes if n is not None],
            relations=[
                r for r in relations.values() if r.source.id in kept and r.target.id in kept
            ],
        )


def merge_entities(ctx: Context, source: str, target: str, fence: Filters | None = None) -> Entity:
    """Resolve ``source`` as ``target`` from now on (the same owner's entities): its names and
    mentions count as the target's. Kept in the store's log, so ``split_entity`` undoes it.
    ``fence`` (a scoped admin's grant): only entities of the memories inside it are found."""
    now = ctx.clock()
    with ctx.retriever.view(_fenced(fence), now) as (index, mask):
        view = _View(index, mask)
        one, other = view.find(source), view.find(target)
        if one.id == other.id:
            raise InvalidInputError(f"{shown(source)} and {shown(target)} are one entity already")
        if one.owner != other.owner:
            raise InvalidInputError(
                f"{shown(source)} belongs to {shown(one.owner)} and {shown(target)} to "
                f"{shown(other.owner)}; entities merge only within one owner's memories"
            )
    actor = access.current_actor()
    link = EntityLink(action="merge", source=one.id, target=other.id, at=now,
                      by=None if actor is None else actor.agent)  # fmt: skip
    ctx.store.link_entities(link)
    merged = _current(ctx, other.id, fence)
    assert merged is not None  # it was visible a moment ago, and merging hides nothing
    return merged


def split_entity(ctx: Context, entity: str, fence: Filters | None = None) -> list[Entity]:
    """Undo merges: ``entity`` merged into another is its own again; an entity others were
    merged into gets them all back. Returns the entities involved, as they now are.
    ``fence``: as ``merge_entities``."""
    now = ctx.clock()
    with ctx.retriever.view(_fenced(fence), now) as (index, mask):
        view = _View(index, mask)
        if fence is not None:
            view.find(entity)  # outside the fence: "not found", whether it exists or not
        node = view.graph.nodes.get(view.graph.current(entity)) or view.find(entity)
        merged = view.graph.merged_into(node.id) is not None
        sources = [node.id] if merged else view.graph.members(node.id)[1:]
        involved = [view.graph.root(node.id), *sources]
    if not sources:
        raise InvalidInputError(f"entity {shown(entity)} was never merged; nothing to split")
    actor = access.current_actor()
    for source in sources:
        ctx.store.link_entities(
            EntityLink(
                action="split", source=source, at=now, by=None if actor is None else actor.agent
            )
        )
    found = (_current(ctx, i, fence) for i in dict.fromkeys(involved))
    return [e for e in found if e is not None]


def _fenced(fence: Filters | None) -> Filters:
    """Every memory, or every memory inside ``fence`` (any status, expired too)."""
    everything = Filters.everything()
    if fence is None:
        return everything
    return fence.model_copy(
        update={"status": everything.status, "include_expired": everything.include_expired}
    )


def _current(ctx: Context, id_: str, fence: Filters | None = None) -> Entity | None:
    with ctx.retriever.view(_fenced(fence), ctx.clock()) as (index, mask):
        view = _View(index, mask)
        return view.entity(view.graph.nodes[view.graph.root(id_)])
