"""What every route shares: the error answers (each error's ``http_status``), the body-size
limit, and the dependencies that authenticate the caller and open the cube it names."""

from __future__ import annotations

import logging
from typing import Annotated, Any

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
    status: int, type_: str, message: str, ids: list[str] | None = None
) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ErrorBody(error=ErrorDetail(type=type_, message=message, ids=ids or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class BodyLimit:
    """413 for a body over the limit, counted as it arrives (a lying Content-Length too)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "InvalidInputError",
            f"request body over {self.max_bytes} bytes; send fewer memories per request",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


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
    return agent_os


Caller = Annotated[AgentOS, Depends(caller)]


def cube_of(request: Request, name: str, me: Caller) -> AgentCube:
    if name not in _os(request).list_cubes():
        raise errors.NotFoundError(f"no cube {name!r}")
    return me.open_cube(name)


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
        if status >= 500 and status != 503:
            log.exception("request failed", exc_info=exc)
        return error_response(status, type(exc).__name__, str(exc), getattr(exc, "ids", None))

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
