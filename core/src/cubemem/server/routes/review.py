"""Quarantine and audit (cube admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cubemem.access import AuditEntry
from cubemem.model import MemoryItem
from cubemem.server.bodies import ERRORS, MAX_RESULTS, Page
from cubemem.server.plumbing import Cube

router = APIRouter()


@router.get("/v1/cubes/{name}/quarantine", tags=["review"], responses=ERRORS)
def quarantine(
    cube: Cube,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page:
    """Memories waiting for review (cube admins)."""
    return Page.of(cube.quarantined(limit=limit + 1, offset=offset), limit, offset)


@router.post("/v1/cubes/{name}/memories/{id}/approve", tags=["review"], responses=ERRORS)
def approve(id: str, cube: Cube) -> MemoryItem:
    return cube.approve(id)


@router.post("/v1/cubes/{name}/memories/{id}/reject", tags=["review"], responses=ERRORS)
def reject(id: str, cube: Cube) -> MemoryItem:
    return cube.reject(id)


@router.get("/v1/cubes/{name}/audit", tags=["review"], responses=ERRORS)
def audit(
    cube: Cube,
    memory_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[AuditEntry]:
    """Who wrote, changed, approved and deleted what, newest first (cube admins)."""
    return cube.audit(memory_id=memory_id, limit=limit, offset=offset)
