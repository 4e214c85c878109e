"""Keyed memories (the LangGraph store): put, lookup, refresh, namespaces."""

from __future__ import annotations

from fastapi import APIRouter

from cubemem.model import MemoryItem
from cubemem.server.bodies import ERRORS, Found, IdsBody, KeyBody, NamespacesBody, PutBody
from cubemem.server.plumbing import Cube

router = APIRouter()


@router.put("/v1/cubes/{name}/keys", tags=["keys"], responses=ERRORS)
def put(body: PutBody, cube: Cube) -> MemoryItem:
    return cube.run(body.op())


@router.post("/v1/cubes/{name}/keys/lookup", tags=["keys"], responses=ERRORS)
def lookup(body: KeyBody, cube: Cube) -> Found:
    return Found(item=cube.run(body.op()))


@router.post("/v1/cubes/{name}/keys/refresh", tags=["keys"], responses=ERRORS)
def refresh(body: IdsBody, cube: Cube) -> list[MemoryItem]:
    return cube.refresh(body.ids)


@router.post("/v1/cubes/{name}/keys/namespaces", tags=["keys"], responses=ERRORS)
def namespaces(body: NamespacesBody, cube: Cube) -> list[list[str]]:
    return [list(n) for n in cube.run(body.op())]
