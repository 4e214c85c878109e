"""Health, the caller, the scheduler."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cubemem import __version__
from cubemem.access import Agent
from cubemem.scheduler.scheduler import SchedulerStatus
from cubemem.server.bodies import ERRORS
from cubemem.server.plumbing import OS, Caller, Operator

router = APIRouter()


class Readiness:
    """Whether the server's warm-up (the embedder, every cube's search index) has ended: a
    server answers at once, warms in a thread, and says so on ``/ready``. It ends once, by
    ``finish`` or ``fail``, whichever comes first; a failed warm-up keeps ``/ready`` at 503
    with the reason (the requests themselves still load what they need)."""

    def __init__(self, *, ready: bool = True) -> None:
        self._done = threading.Event()
        self._once = threading.Lock()
        self._started = time.monotonic()
        self.seconds: float | None = None
        self.cold: dict[str, str] = {}
        self.error: str | None = None
        if ready:
            self.finish({})

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self.error is None

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    def finish(self, warmed: dict[str, Any] | None) -> None:
        """The warm-up ended (``MemoryOS.warm``'s answer: the cubes it could not warm)."""
        self._end(cold=dict((warmed or {}).get("cold", {})))

    def fail(self, reason: str) -> None:
        """The warm-up broke off: ``/ready`` stays 503 and says why."""
        self._end(error=reason or "the warm-up failed")

    def _end(self, *, cold: dict[str, str] | None = None, error: str | None = None) -> None:
        with self._once:
            if self._done.is_set():
                return
            self.cold, self.error = cold or {}, error
            self.seconds = round(time.monotonic() - self._started, 3)
            self._done.set()

    def run(self, warm: Callable[[], dict[str, Any] | None]) -> None:
        """``warm()``, then ``finish`` with its answer, or ``fail`` with what it raised: the
        readiness always ends (a warm-up thread that dies would leave it starting for good)."""
        try:
            warmed = warm()
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: ended, then passed on
            self.fail(f"{type(exc).__name__}: {exc}")
            raise
        else:
            self.finish(warmed)


@router.get("/health", tags=["service"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness; needs no key. Answered on the event loop itself, never queued behind the
    worker threads other requests use, so no client can starve it. ``ready``: as ``/ready``."""
    return {"status": "ok", "version": __version__, "ready": request.app.state.readiness.ready}


@router.get(
    "/ready",
    tags=["service"],
    responses={
        503: {"description": "Still loading the embedder and the search indexes, or failed to."}
    },
)
async def ready(request: Request) -> JSONResponse:
    """Readiness; needs no key: 200 once the embedder and every cube's search index are
    loaded (a request then costs what every later one does), 503 while they load. ``cold``:
    cubes that could not be warmed, and why (their requests say so too). A warm-up that
    failed stays 503 with ``status: failed`` and its ``reason``."""
    state: Readiness = request.app.state.readiness
    if state.error is not None:
        body = {"status": "failed", "reason": state.error, "seconds": state.seconds}
        return JSONResponse(body, status_code=503)
    if not state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready", "seconds": state.seconds, "cold": state.cold})


@router.get("/v1/me", tags=["service"], responses=ERRORS)
def me(me: Caller) -> Agent:
    """The agent the key belongs to."""
    return me.agent


@router.get("/v1/scheduler", tags=["service"], responses=ERRORS)
def scheduler(me: Operator, os_: OS) -> SchedulerStatus:
    """The background queue: ready, in flight, done, failed tasks and throughput
    (operators: failures name memories of every cube)."""
    return os_.scheduler.status()
