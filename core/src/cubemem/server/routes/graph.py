"""The entity graph: entities, relations and neighbourhoods of what the caller may read."""

from __future__ import annotations

from fastapi import APIRouter

from cubemem.model.graph import Entity, Neighbourhood, Relation
from cubemem.server.bodies import (
    ERRORS,
    EntitiesBody,
    MergeBody,
    NeighbourhoodBody,
    RelationsBody,
    SplitBody,
)
from cubemem.server.plumbing import Cube

router = APIRouter()


@router.post("/v1/cubes/{name}/entities", tags=["graph"], responses=ERRORS)
def entities(body: EntitiesBody, cube: Cube) -> list[Entity]:
    """Entities the memories mention, the most mentioned first."""
    return cube.run(body.op())


@router.post("/v1/cubes/{name}/relations", tags=["graph"], responses=ERRORS)
def relations(body: RelationsBody, cube: Cube) -> list[Relation]:
    """How one entity is related to others, each relation citing its memories."""
    return cube.run(body.op())


@router.post("/v1/cubes/{name}/neighbourhood", tags=["graph"], responses=ERRORS)
def neighbourhood(body: NeighbourhoodBody, cube: Cube) -> Neighbourhood:
    """An entity, the entities within ``hops`` relations of it, and those relations."""
    return cube.run(body.op())


@router.post("/v1/cubes/{name}/entities/merge", tags=["graph"], responses=ERRORS)
def merge(body: MergeBody, cube: Cube) -> Entity:
    """Resolve one entity as another from now on (cube admins; undone by split)."""
    return cube.run(body.op())


@router.post("/v1/cubes/{name}/entities/split", tags=["graph"], responses=ERRORS)
def split(body: SplitBody, cube: Cube) -> list[Entity]:
    """Undo merges of an entity (cube admins)."""
    return cube.run(body.op())
