"""Memories: add (memories, turns), wait, search, list, count, get, update, delete,
restore, history."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from cubemem import errors
from cubemem.model import MemoryItem
from cubemem.model.governance import Forgotten
from cubemem.server.bodies import (
    ERRORS,
    MAX_RESULTS,
    AddBody,
    ForgetBody,
    InvalidateBody,
    ListBody,
    MessagesBody,
    NamespacesBody,
    Page,
    Results,
    SearchBody,
    UpdateBody,
    WaitBody,
    Waited,
    Written,
)
from cubemem.server.plumbing import Cube, IdemKey, allowance

router = APIRouter()
_POLL_S = 0.05


@router.post(
    "/v1/cubes/{name}/memories",
    status_code=202,
    tags=["memories"],
    responses={**ERRORS, 201: {"model": Written, "description": "Stored (wait=true)"}},
)
def add(body: AddBody, cube: Cube, response: Response, key: IdemKey = None) -> Written:
    """Add memories. Queued durably and answered 202 with their ids; ``wait=true``
    stores them first (201)."""
    result = cube.run(body.op(key))
    results: list[Any] = result if isinstance(result, list) else [result]
    if body.wait:
        response.status_code = 201
        return Written(ids=[i.id for i in results], status="stored", items=results)
    return Written(ids=results, status="queued")


@router.post("/v1/cubes/{name}/messages", status_code=202, tags=["memories"], responses=ERRORS)
def add_messages(
    body: MessagesBody, cube: Cube, response: Response, key: IdemKey = None
) -> Written:
    """Add conversation turns raw (speaker, time and id kept), queued unless ``wait``."""
    result = cube.run(body.op(key))
    stored = cast(list[Any], result)
    if body.wait:
        response.status_code = 201
        return Written(ids=[i.id for i in stored], status="stored", items=stored)
    return Written(ids=stored, status="queued")


@router.post("/v1/cubes/{name}/wait", tags=["memories"], responses=ERRORS)
async def wait(body: WaitBody, cube: Cube, request: Request) -> Waited:
    """Until these ids are stored and searchable (false on timeout). The wait is parked on
    the event loop and checks in short steps, holding no worker thread between them; an agent
    may keep ``max_waits_per_agent`` open at once (429 beyond)."""
    with allowance(request).parked(cube.agent.id):
        deadline = time.monotonic() + body.timeout_s
        while True:
            done = await run_in_threadpool(cube.run, body.op(timeout=0))
            left = deadline - time.monotonic()
            if done or left <= 0:
                return Waited(done=done)
            await asyncio.sleep(min(_POLL_S, left))


@router.post("/v1/cubes/{name}/search", tags=["memories"], responses=ERRORS)
def search(body: SearchBody, cube: Cube) -> Results:
    """The ``k`` most relevant memories this agent may read."""
    return Results(results=cube.run(body.op()))


@router.get("/v1/cubes/{name}/memories", tags=["memories"], responses=ERRORS)
def list_memories(
    cube: Cube,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    filters: Annotated[str | None, Query(description="Filters as JSON.")] = None,
) -> Page:
    """A page of memories in insertion order."""
    parsed = None
    if filters is not None:
        try:
            parsed = json.loads(filters)
        except (ValueError, RecursionError):
            raise errors.InvalidFilterError("filters must be a JSON object") from None
    return list_by_body(ListBody(filters=parsed, limit=limit, offset=offset), cube)


@router.post("/v1/cubes/{name}/memories/list", tags=["memories"], responses=ERRORS)
def list_by_body(body: ListBody, cube: Cube) -> Page:
    """``GET .../memories`` with the filters in the body."""
    return Page.of(cube.run(body.op()), body.limit, body.offset)


@router.post("/v1/cubes/{name}/count", tags=["memories"], responses=ERRORS)
def count(body: NamespacesBody, cube: Cube) -> dict[str, int]:
    """How many memories match ``filters``."""
    return {"count": cube.run(body.count())}


@router.get("/v1/cubes/{name}/stats", tags=["cubes"], responses=ERRORS)
def stats(cube: Cube) -> dict[str, Any]:
    """Counts by status, the embedder, and the store's revision."""
    return cube.stats()


@router.get("/v1/cubes/{name}/memories/{id}", tags=["memories"], responses=ERRORS)
def get(id: str, cube: Cube) -> MemoryItem:
    return cube.get(id)


@router.patch("/v1/cubes/{name}/memories/{id}", tags=["memories"], responses=ERRORS)
def update(id: str, body: UpdateBody, cube: Cube) -> MemoryItem:
    """A new version; with ``expected_version`` a stale one is 409 and nothing is written."""
    return cube.run(body.op(id))


@router.delete(
    "/v1/cubes/{name}/memories/{id}",
    status_code=204,
    tags=["memories"],
    responses={
        **ERRORS,
        202: {"model": MemoryItem, "description": "Held for review: the proposal that waits."},
    },
)
def delete(
    id: str,
    cube: Cube,
    purge: bool = False,
    expected_version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Soft delete (a new version); ``purge=true`` erases (needs admin). A delete by an agent
    whose changes are held is 202 with the proposal; the memory stays until it is approved."""
    held = cube.delete(id, purge=purge, expected_version=expected_version)
    if held is not None:
        return Response(held.model_dump_json(), status_code=202, media_type="application/json")
    return Response(status_code=204)


@router.post("/v1/cubes/{name}/memories/{id}/invalidate", tags=["memories"], responses=ERRORS)
def invalidate(id: str, body: InvalidateBody, cube: Cube) -> MemoryItem:
    """End a fact's valid time at ``at`` (default: now) without a successor (a new version)."""
    return cube.run(body.op(id))


@router.post("/v1/cubes/{name}/memories/{id}/restore", tags=["memories"], responses=ERRORS)
def restore(
    id: str, cube: Cube, expected_version: Annotated[int | None, Query(ge=1)] = None
) -> MemoryItem:
    return cube.restore(id, expected_version=expected_version)


@router.get("/v1/cubes/{name}/memories/{id}/history", tags=["memories"], responses=ERRORS)
def history(id: str, cube: Cube) -> list[MemoryItem]:
    """Every version this agent may see, oldest first."""
    return cube.history(id)


@router.post("/v1/cubes/{name}/forget", tags=["memories"], responses=ERRORS)
def forget(body: ForgetBody, cube: Cube) -> Forgotten:
    """Erase memories for good — by ids, scope or filter — with what was derived from them
    (cube admins; audited by ids and count). At least one selector is required."""
    return cube.run(body.op())
