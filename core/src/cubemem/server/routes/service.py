"""Health, the caller, the scheduler."""

from __future__ import annotations

from fastapi import APIRouter

from cubemem import __version__
from cubemem.access import Agent
from cubemem.scheduler.scheduler import SchedulerStatus
from cubemem.server.bodies import ERRORS
from cubemem.server.plumbing import OS, Caller, Operator

router = APIRouter()


@router.get("/health", tags=["service"])
async def health() -> dict[str, str]:
    """Liveness; needs no key. Answered on the event loop itself, never queued behind the
    worker threads other requests use, so no client can starve it."""
    return {"status": "ok", "version": __version__}


@router.get("/v1/me", tags=["service"], responses=ERRORS)
def me(me: Caller) -> Agent:
    """The agent the key belongs to."""
    return me.agent


@router.get("/v1/scheduler", tags=["service"], responses=ERRORS)
def scheduler(me: Operator, os_: OS) -> SchedulerStatus:
    """The background queue: ready, in flight, done, failed tasks and throughput
    (operators: failures name memories of every cube)."""
    return os_.scheduler.status()
