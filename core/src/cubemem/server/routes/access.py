"""Grants and trust policy of a cube (cube admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cubemem.access import Grant
from cubemem.server.bodies import ERRORS, GrantBody, PolicyBody
from cubemem.server.plumbing import Admin, Caller, plain

router = APIRouter()


@router.get("/v1/cubes/{name}/grants", tags=["access"], responses=ERRORS)
def grants(cube: Admin, me: Caller) -> list[Grant]:
    """The grants on the cube (within its scope, for an admin whose grant has one)."""
    return me.grants(cube.name)


@router.put("/v1/cubes/{name}/grants/{agent}", tags=["access"], responses=ERRORS)
def grant(agent: str, body: GrantBody, cube: Admin, me: Caller) -> Grant:
    """Give or replace a grant; a scoped admin grants within its scope, never to itself."""
    return me.grant(agent, cube.name, body.right, scope=plain(body.scope))


@router.delete(
    "/v1/cubes/{name}/grants/{agent}", status_code=204, tags=["access"], responses=ERRORS
)
def revoke(agent: str, cube: Admin, me: Caller) -> Response:
    me.revoke(agent, cube.name)
    return Response(status_code=204)


@router.put("/v1/cubes/{name}/policy", tags=["access"], responses=ERRORS)
def policy(body: PolicyBody, cube: Admin, me: Caller) -> dict[str, Any]:
    """The trust an agent needs for its writes to skip quarantine (an admin of the whole
    cube)."""
    return me.set_policy(cube.name, trust_threshold=body.trust_threshold).model_dump()
