"""What every route shares: the error answers (each error's ``http_status``), the body-size
limit, and the dependencies that authenticate the caller and open the cube it names."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cubemem import errors
from cubemem.access import Right
from cubemem.os import MemoryOS
from cubemem.server.bodies import ErrorBody, ErrorDetail
from cubemem.shared import AgentCube, AgentOS

log = logging.getLogger(__name__)


def error_response(
    status: int,
    type_: str,
    message: str,
    ids: list[str] | None = None,
    retry_after: float | None = None,
) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    body = ErrorBody(error=ErrorDetail(type=type_, message=message, ids=ids or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class BodyLimit:
    """Reads a request's body before the route sees it: 413 for one over ``max_bytes``
    (counted as it arrives, chunked or with a lying Content-Length), 408 for a client that
    stops sending for ``timeout_s`` (a slow or half-sent request holds no worker)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(413, scope, send)
            return
        body, more = bytearray(), True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                await self._refuse(408, scope, send)
                return
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(413, scope, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: only the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, status: int, scope: Scope, send: Send) -> None:
        message = (
            f"request body over {self.max_bytes} bytes; send fewer memories per request"
            if status == 413
            else f"the request body did not arrive within {self.timeout_s:g} s"
        )
        response = error_response(status, "InvalidInputError", message)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


class Allowance:
    """Per-agent server resources: a request rate (a token bucket per agent, refilled at
    ``per_minute`` a minute, ``RateLimitedError`` when empty) and how many long polls
    (``/wait``) one agent may park at once."""

    def __init__(self, per_minute: int, waits: int) -> None:
        self.per_minute, self.waits = per_minute, waits
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._parked: dict[str, int] = {}

    def take(
        self, agent: str, *, spend: bool = True, what: str = "requests a minute for this agent"
    ) -> None:
        """One request of ``agent``'s (``spend=False``: only check that one is left)."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(agent, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60)
            if tokens < 1:
                raise errors.RateLimitedError(
                    f"over {self.per_minute} {what}; retry in "
                    f"{(1 - tokens) * 60 / self.per_minute:.1f} s",
                    retry_after=(1 - tokens) * 60 / self.per_minute,
                )
            self._buckets[agent] = (tokens - spend, now)

    @contextmanager
    def parked(self, agent: str) -> Iterator[None]:
        with self._lock:
            if self._parked.get(agent, 0) >= self.waits:
                raise errors.RateLimitedError(
                    f"this agent already has {self.waits} waits open; wait for one to end",
                    retry_after=1.0,
                )
            self._parked[agent] = self._parked.get(agent, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._parked[agent] -= 1


def _os(request: Request) -> MemoryOS:
    return request.app.state.os


OS = Annotated[MemoryOS, Depends(_os)]


def caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> AgentOS:
    """The agent whose Bearer key the request carries (401 without a valid one)."""
    if authorization is None:
        raise errors.AuthenticationError("send Authorization: Bearer <agent API key>")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise errors.AuthenticationError("the Authorization header must be 'Bearer <API key>'")
    agent_os = _os(request).authenticate(key.strip())
    if agent_os is None:
        raise errors.AuthenticationError("unknown or disabled API key")
    allowance(request).take(agent_os.agent.id)
    return agent_os


def allowance(request: Request) -> Allowance:
    return cast(Allowance, request.app.state.allowance)


Caller = Annotated[AgentOS, Depends(caller)]


def cube_of(name: str, me: Caller) -> AgentCube:
    """The cube ``name`` as the caller may use it. To an agent that is not an operator, a cube
    that does not exist and one it holds no grant on answer alike (403, "holds no grant"), so
    the answer tells no cube names; operators see every cube, and get 404 for a missing one."""
    if name in me.list_cubes():
        return me.open_cube(name)
    agent = me.agent
    if agent.operator:
        raise errors.NotFoundError(f"no cube {name!r}")
    return me.open_cube(name)  # refused by the grant check, whether the cube exists or not


Cube = Annotated[AgentCube, Depends(cube_of)]


def operator(me: Caller) -> AgentOS:
    if not me.agent.operator:
        raise errors.PermissionDeniedError(
            f"agent {me.agent.name!r} is not an operator; only operators manage agents and cubes"
        )
    return me


Operator = Annotated[AgentOS, Depends(operator)]


def cube_admin(cube: Cube, me: Caller) -> AgentCube:
    me.access.check(me.agent, cube.name, Right.ADMIN)
    return cube


Admin = Annotated[AgentCube, Depends(cube_admin)]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Retries with the same key store nothing twice.",
    ),
]


def install_error_handlers(app: FastAPI) -> None:
    """cubemem's errors and FastAPI's own as ``{"error": {...}}`` with their status."""

    @app.exception_handler(errors.CubememError)
    async def _cubememerror_response(request: Request, exc: errors.CubememError) -> JSONResponse:
        status = exc.http_status
        if status >= 500 and status not in (503, 429):
            log.exception("request failed", exc_info=exc)
        return error_response(
            status,
            type(exc).__name__,
            str(exc),
            getattr(exc, "ids", None),
            getattr(exc, "retry_after", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return error_response(422, "InvalidInputError", message[:2000])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return error_response(
                400, "InvalidInputError", "the body could not be read as JSON (or nests too deep)"
            )
        return error_response(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(RecursionError)
    async def _deep(request: Request, exc: RecursionError) -> JSONResponse:
        return error_response(422, "InvalidInputError", "request nested too deeply")


def plain(value: Any) -> Any:
    """Request models as the plain dicts the library takes (unset fields left out)."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value
