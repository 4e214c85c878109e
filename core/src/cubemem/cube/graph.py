"""The entity graph's part of the cube surface: ``entities``, ``relations`` and
``neighbourhood`` over the memories the caller may see (``cubemem.graph``;
docs/time-and-entities.md). ``BaseCube`` inherits it."""

from __future__ import annotations

import builtins
from datetime import datetime

import cubemem.cube.operations as op
from cubemem.cube.operations import FiltersLike
from cubemem.cube.runner import Runner, twin
from cubemem.model.graph import Entity, Neighbourhood, Relation


class GraphSurface(Runner):
    """Who and what the memories mention, and how those are related."""

    def entities(
        self,
        query: str | None = None,
        *,
        name: str | None = None,
        kind: str | None = None,
        filters: FiltersLike = None,
        as_of: datetime | str | None = None,
        limit: int = 20,
    ) -> builtins.list[Entity]:
        """Entities (people, places, organisations, things) that the memories you may see
        mention: those whose names hold every word of ``query``, or whose name or alias is
        ``name`` (any case); of ``kind``; in memories matching ``filters`` and true ``as_of``.
        The most mentioned first."""
        return self._do(
            op.Entities(
                query=query, name=name, kind=kind, filters=filters, as_of=as_of, limit=limit
            )
        )

    aentities = twin(entities)

    def relations(
        self,
        entity: str,
        *,
        filters: FiltersLike = None,
        as_of: datetime | str | None = None,
        limit: int = 20,
    ) -> builtins.list[Relation]:
        """How ``entity`` (an id from ``entities``, or a name) is related to others: each
        relation cites the memories that mention both, with their valid-time span."""
        return self._do(op.Relations(entity=entity, filters=filters, as_of=as_of, limit=limit))

    arelations = twin(relations)

    def neighbourhood(
        self,
        entity: str,
        *,
        hops: int = 2,
        filters: FiltersLike = None,
        as_of: datetime | str | None = None,
        limit: int = 50,
    ) -> Neighbourhood:
        """``entity``, the entities within ``hops`` relations of it, and the relations among
        them ("which of Ana's friends lives in the city she moved to?")."""
        return self._do(
            op.Neighbourhood(entity=entity, hops=hops, filters=filters, as_of=as_of, limit=limit)
        )

    aneighbourhood = twin(neighbourhood)

    def merge_entities(self, source: str, target: str) -> Entity:
        """Resolve ``source`` as ``target`` from now on ("Mel" is "Melanie"): its names and
        mentions count as the target's. Needs ``admin`` on a shared cube; undone by
        ``split_entity`` (the store keeps every merge and split, in order)."""
        return self._do(op.MergeEntities(source=source, target=target))

    amerge_entities = twin(merge_entities)

    def split_entity(self, entity: str) -> builtins.list[Entity]:
        """Undo merges: an entity merged into another is its own again; one that others were
        merged into gets them back. Returns the entities involved, as they now are."""
        return self._do(op.SplitEntity(entity=entity))

    asplit_entity = twin(split_entity)
