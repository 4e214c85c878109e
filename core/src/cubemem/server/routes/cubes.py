"""Cubes: list, create, one cube's manifest and stats, search across cubes."""

from __future__ import annotations

from fastapi import APIRouter

from cubemem import errors
from cubemem.access import Right
from cubemem.server.bodies import ERRORS, CubeInfo, MultiSearchBody, NewCube, Results
from cubemem.server.plumbing import OS, Caller, Cube, Operator
from cubemem.shared import AgentCube, AgentOS

router = APIRouter()


def info(cube: AgentCube, me: AgentOS) -> CubeInfo:
    grant = me.access.check(me.agent, cube.name, Right.READ)
    return CubeInfo(manifest=cube.manifest, right=grant.right)


@router.get("/v1/cubes", tags=["cubes"], responses=ERRORS)
def list_cubes(me: Caller) -> list[CubeInfo]:
    """The cubes this agent holds a grant on."""
    return [info(me.open_cube(name), me) for name in me.list_cubes()]


@router.post("/v1/cubes", status_code=201, tags=["cubes"], responses=ERRORS)
def create_cube(body: NewCube, me: Operator) -> CubeInfo:
    """A new cube (operators)."""
    return info(me.create_cube(body.name), me)


@router.get("/v1/cubes/{name}", tags=["cubes"], responses=ERRORS)
def get_cube(cube: Cube, me: Caller) -> CubeInfo:
    return info(cube, me)


@router.post("/v1/search", tags=["memories"], responses=ERRORS)
def search_all(body: MultiSearchBody, me: Caller, os_: OS) -> Results:
    """Search every cube this agent may read (or those named), merged by score."""
    known = set(os_.list_cubes())
    for name in body.cubes or []:
        if name not in known:
            raise errors.NotFoundError(f"no cube {name!r}")
    return Results(results=me.run(body.across()))
