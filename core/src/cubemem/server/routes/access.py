"""Grants and trust policy of a cube (cube admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cubemem.access import Grant
from cubemem.server.bodies import ERRORS, GrantBody, PolicyBody
from cubemem.server.plumbing import OS, Admin, Caller, plain

router = APIRouter()


@router.get("/v1/cubes/{name}/grants", tags=["access"], responses=ERRORS)
def grants(cube: Admin, os_: OS) -> list[Grant]:
    return os_.access.grants(cube=cube.name)


@router.put("/v1/cubes/{name}/grants/{agent}", tags=["access"], responses=ERRORS)
def grant(agent: str, body: GrantBody, cube: Admin, me: Caller, os_: OS) -> Grant:
    return os_.access.grant(agent, cube.name, body.right, scope=plain(body.scope), by=me.agent.name)


@router.delete(
    "/v1/cubes/{name}/grants/{agent}", status_code=204, tags=["access"], responses=ERRORS
)
def revoke(agent: str, cube: Admin, me: Caller, os_: OS) -> Response:
    os_.access.revoke(agent, cube.name, by=me.agent.name)
    return Response(status_code=204)


@router.put("/v1/cubes/{name}/policy", tags=["access"], responses=ERRORS)
def policy(body: PolicyBody, cube: Admin, me: Caller, os_: OS) -> dict[str, Any]:
    """The trust an agent needs for its writes to skip quarantine."""
    return os_.access.set_policy(
        cube.name, trust_threshold=body.trust_threshold, by=me.agent.name
    ).model_dump()
