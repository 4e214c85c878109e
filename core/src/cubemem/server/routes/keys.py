"""Keyed memories (the LangGraph store): put, lookup, refresh, namespaces."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from cubemem.model import MemoryItem
from cubemem.server.bodies import ERRORS, Found, IdsBody, KeyBody, NamespacesBody, PutBody
from cubemem.server.plumbing import Cube, plain

router = APIRouter()


@router.put("/v1/cubes/{name}/keys", tags=["keys"], responses=ERRORS)
def put(body: PutBody, cube: Cube) -> MemoryItem:
    return cube.put(
        tuple(body.namespace),
        body.key,
        body.content,
        value=body.value,
        scope=plain(body.scope),
        tags=body.tags,
        metadata=body.metadata,
        ttl=None if body.ttl_s is None else timedelta(seconds=body.ttl_s),
    )


@router.post("/v1/cubes/{name}/keys/lookup", tags=["keys"], responses=ERRORS)
def lookup(body: KeyBody, cube: Cube) -> Found:
    return Found(item=cube.lookup(tuple(body.namespace), body.key))


@router.post("/v1/cubes/{name}/keys/refresh", tags=["keys"], responses=ERRORS)
def refresh(body: IdsBody, cube: Cube) -> list[MemoryItem]:
    return cube.refresh(body.ids)


@router.post("/v1/cubes/{name}/keys/namespaces", tags=["keys"], responses=ERRORS)
def namespaces(body: NamespacesBody, cube: Cube) -> list[list[str]]:
    return [list(n) for n in cube.namespaces(tuple(body.prefix), filters=body.filters)]
