"""The REST API: ``create_app(os)`` is a FastAPI app over one MemoryOS.

Every route but ``/health`` needs ``Authorization: Bearer <key>`` (an agent's API key): no key
or an unknown one is 401, a known agent without the right is 403. Calls run as that agent
(``MemoryOS.authenticate`` → ``cubemem.shared``), so the server decides nothing the library
does not. Errors are JSON ``{"error": {"type", "message", "ids"}}`` with the status of their
type (see ``STATUS``); request bodies over ``max_body_bytes`` are 413 before they are read.

Writes (``POST .../memories``, ``.../messages``) are acknowledged once durable: queued in the
scheduler's queue (202 with the new ids) unless ``wait=true`` asks for them stored and
searchable (201). An ``Idempotency-Key`` header makes a retried write store nothing twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cubemem import __version__, errors
from cubemem.access import Agent, AuditEntry, Grant, Right
from cubemem.manifest import Manifest
from cubemem.model import MemoryItem, SearchResult
from cubemem.os import MemoryOS
from cubemem.scheduler.scheduler import SchedulerStatus
from cubemem.shared import AgentCube, AgentOS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 << 20
MAX_RESULTS = 100
"""Largest ``k`` of a search and ``limit`` of a page."""
MAX_BATCH = 1000
"""Most memories or messages one write may carry."""

STATUS: list[tuple[type[Exception], int]] = [
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.InvalidInputError, 422),
    (errors.InvalidBlockError, 422),
    (errors.IncompatibleCubeError, 409),
    (errors.CubeBusyError, 503),
    (errors.BackendUnavailableError, 503),
    (errors.FollowUpError, 500),
    (errors.ExtractionError, 502),
    (errors.CubememError, 500),
]
"""HTTP status of each error type (first match); the remote client maps them back."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeBody(_Body):
    user: str | None = None
    agent: str | None = None
    session: str | None = None


class MemoryBody(_Body):
    """One memory with its own provenance (``cubemem.MemoryInput``)."""

    content: str
    scope: ScopeBody | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    source_ids: list[str] = Field(default_factory=list)
    speaker: str | None = None
    occurred_at: datetime | None = None
    expires_at: datetime | None = None
    trust: float = Field(1.0, ge=0.0, le=1.0)
    context: str | None = None


class AddBody(_Body):
    content: str | list[str | MemoryBody] | MemoryBody = Field(
        description="A text, a memory with provenance, or a list of them (at most 1000)."
    )
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    wait: bool = Field(False, description="Store before answering (201) instead of queueing.")


class MessageBody(_Body):
    speaker: str
    content: str
    id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class MessagesBody(_Body):
    messages: list[MessageBody] = Field(max_length=MAX_BATCH)
    session: str | None = None
    timestamp: datetime | None = None
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    wait: bool = False


class Written(BaseModel):
    ids: list[str]
    status: Literal["queued", "stored"]
    items: list[MemoryItem] = Field(default_factory=list)


class SearchBody(_Body):
    query: str
    k: int = Field(10, ge=1, le=MAX_RESULTS)
    filters: dict[str, Any] | None = None
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    include_superseded: bool = False


class MultiSearchBody(SearchBody):
    cubes: list[str] | None = None


class Results(BaseModel):
    results: list[SearchResult]


class ListBody(_Body):
    filters: dict[str, Any] | None = None
    limit: int = Field(100, ge=1, le=MAX_RESULTS)
    offset: int = Field(0, ge=0, le=2**31 - 1)


class Page(BaseModel):
    items: list[MemoryItem]
    next_offset: int | None = Field(description="Offset of the next page; null on the last.")


class UpdateBody(_Body):
    content: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    scope: ScopeBody | None = None
    expires_at: datetime | None = None
    expected_version: int | None = Field(None, ge=1)


class PutBody(_Body):
    namespace: list[str]
    key: str
    content: str
    value: dict[str, Any] | None = None
    scope: ScopeBody | None = None
    tags: list[str] | None = None
    metadata: dict[str, str | int | float | bool | None] | None = None
    ttl_s: float | None = Field(None, gt=0, le=100 * 365 * 86400)


class KeyBody(_Body):
    namespace: list[str]
    key: str


class IdsBody(_Body):
    ids: list[str] = Field(max_length=MAX_BATCH)


class WaitBody(IdsBody):
    timeout_s: float = Field(30.0, gt=0, le=60)


class NamespacesBody(_Body):
    prefix: list[str] = Field(default_factory=list)
    filters: dict[str, Any] | None = None


class Found(BaseModel):
    item: MemoryItem | None


class CubeInfo(BaseModel):
    manifest: Manifest
    right: Right = Field(description="The caller's right on the cube.")


class NewCube(_Body):
    name: str


class NewAgent(_Body):
    name: str
    trust: float = Field(0.5, ge=0.0, le=1.0)
    operator: bool = False


class AgentKey(BaseModel):
    agent: Agent
    key: str = Field(description="The API key: shown this once, stored only as a hash.")


class AgentChange(_Body):
    trust: float | None = Field(None, ge=0.0, le=1.0)
    disabled: bool | None = None
    operator: bool | None = None


class GrantBody(_Body):
    right: Right
    scope: ScopeBody | None = None


class PolicyBody(_Body):
    trust_threshold: float = Field(ge=0.0, le=1.0)


class Waited(BaseModel):
    done: bool


class ErrorDetail(BaseModel):
    type: str
    message: str
    ids: list[str] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (401, "No API key, or an unknown one"),
        (403, "The agent lacks the right"),
        (404, "No such cube or memory"),
        (409, "Version conflict"),
        (413, "Request body too large"),
        (422, "Invalid input"),
        (503, "Backend busy or unavailable; retry"),
    ]
}


# -- plumbing -------------------------------------------------------------------------------
def _error(status: int, type_: str, message: str, ids: list[str] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ErrorBody(error=ErrorDetail(type=type_, message=message, ids=ids or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class _BodyLimit:
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
        response = _error(
            413,
            "InvalidInputError",
            f"request body over {self.max_bytes} bytes; send fewer memories per request",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _os(request: Request) -> MemoryOS:
    return request.app.state.os


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


def create_app(
    os_: MemoryOS,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    title: str = "cubemem",
) -> FastAPI:
    """The REST API over ``os_`` (which the caller owns and closes)."""
    app = FastAPI(
        title=title,
        version=__version__,
        description="Shared memory for LLM agents: cubes of versioned memories with hybrid "
        "search, per-agent grants, quarantine and audit. Authenticate with "
        "`Authorization: Bearer <agent key>`.",
    )
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    app.state.os = os_

    @app.exception_handler(errors.CubememError)
    async def _cubemem_error(request: Request, exc: errors.CubememError) -> JSONResponse:
        status = next(code for kind, code in STATUS if isinstance(exc, kind))
        if status >= 500 and status != 503:
            log.exception("request failed", exc_info=exc)
        return _error(status, type(exc).__name__, str(exc), getattr(exc, "ids", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return _error(422, "InvalidInputError", message[:2000])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return _error(
                400, "InvalidInputError", "the body could not be read as JSON (or nests too deep)"
            )
        return _error(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(RecursionError)
    async def _deep(request: Request, exc: RecursionError) -> JSONResponse:
        return _error(422, "InvalidInputError", "request nested too deeply")

    # -- health and me --------------------------------------------------------------------
    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness; needs no key."""
        return {"status": "ok", "version": __version__}

    @app.get("/v1/me", tags=["service"], responses=_ERRORS)
    def me(me: Caller) -> Agent:
        """The agent the key belongs to."""
        return me.agent

    @app.get("/v1/scheduler", tags=["service"], responses=_ERRORS)
    def scheduler(me: Operator) -> SchedulerStatus:
        """The background queue: ready, in flight, done, failed tasks and throughput
        (operators: failures name memories of every cube)."""
        return os_.scheduler.status()

    # -- cubes ----------------------------------------------------------------------------
    def info(cube: AgentCube, me: AgentOS) -> CubeInfo:
        grant = os_.access.check(me.agent, cube.name, Right.READ)
        return CubeInfo(manifest=cube.manifest, right=grant.right)

    @app.get("/v1/cubes", tags=["cubes"], responses=_ERRORS)
    def list_cubes(me: Caller) -> list[CubeInfo]:
        """The cubes this agent holds a grant on."""
        return [info(me.open_cube(name), me) for name in me.list_cubes()]

    @app.post("/v1/cubes", status_code=201, tags=["cubes"], responses=_ERRORS)
    def create_cube(body: NewCube, me: Operator) -> CubeInfo:
        """A new cube (operators)."""
        return info(me.create_cube(body.name), me)

    @app.get("/v1/cubes/{name}", tags=["cubes"], responses=_ERRORS)
    def get_cube(cube: Cube, me: Caller) -> CubeInfo:
        return info(cube, me)

    @app.post("/v1/search", tags=["memories"], responses=_ERRORS)
    def search_all(body: MultiSearchBody, me: Caller) -> Results:
        """Search every cube this agent may read (or those named), merged by score."""
        known = set(os_.list_cubes())
        for name in body.cubes or []:
            if name not in known:
                raise errors.NotFoundError(f"no cube {name!r}")
        return Results(
            results=me.search(
                body.query,
                cubes=body.cubes,
                k=body.k,
                filters=body.filters,
                min_score=body.min_score,
                include_superseded=body.include_superseded,
            )
        )

    # -- memories -------------------------------------------------------------------------
    @app.post(
        "/v1/cubes/{name}/memories",
        status_code=202,
        tags=["memories"],
        responses={**_ERRORS, 201: {"model": Written, "description": "Stored (wait=true)"}},
    )
    def add(body: AddBody, cube: Cube, response: Response, key: IdemKey = None) -> Written:
        """Add memories. Queued durably and answered 202 with their ids; ``wait=true``
        stores them first (201)."""
        content = body.content
        many = isinstance(content, list)
        raw = [_plain(c) for c in content] if isinstance(content, list) else _plain(content)
        if many and not 0 < len(raw) <= MAX_BATCH:
            raise errors.InvalidInputError(f"content holds 1 to {MAX_BATCH} memories")
        result = cube.add(
            raw,
            scope=_plain(body.scope),
            tags=body.tags,
            metadata=body.metadata,
            wait=body.wait,
            idempotency_key=key,
        )
        results = result if isinstance(result, list) else [result]
        if body.wait:
            response.status_code = 201
            return Written(ids=[i.id for i in results], status="stored", items=results)
        return Written(ids=results, status="queued")

    @app.post("/v1/cubes/{name}/messages", status_code=202, tags=["memories"], responses=_ERRORS)
    def add_messages(
        body: MessagesBody, cube: Cube, response: Response, key: IdemKey = None
    ) -> Written:
        """Add conversation turns raw (speaker, time and id kept), queued unless ``wait``."""
        result = cube.add_messages(
            [m.model_dump(exclude_none=True) for m in body.messages],
            session=body.session,
            timestamp=body.timestamp,
            scope=_plain(body.scope),
            tags=body.tags,
            metadata=body.metadata,
            wait=body.wait,
            idempotency_key=key,
        )
        if body.wait:
            response.status_code = 201
            return Written(ids=[i.id for i in result], status="stored", items=result)
        return Written(ids=result, status="queued")

    @app.post("/v1/cubes/{name}/wait", tags=["memories"], responses=_ERRORS)
    def wait(body: WaitBody, cube: Cube) -> Waited:
        """Until these ids are stored and searchable (false on timeout)."""
        cube.count()  # needs read
        return Waited(done=os_.scheduler.wait(body.ids, body.timeout_s, cube=cube.id))

    @app.post("/v1/cubes/{name}/search", tags=["memories"], responses=_ERRORS)
    def search(body: SearchBody, cube: Cube) -> Results:
        """The ``k`` most relevant memories this agent may read."""
        return Results(
            results=cube.search(
                body.query,
                k=body.k,
                filters=body.filters,
                min_score=body.min_score,
                include_superseded=body.include_superseded,
            )
        )

    @app.get("/v1/cubes/{name}/memories", tags=["memories"], responses=_ERRORS)
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
        return _page(cube, parsed, limit, offset)

    @app.post("/v1/cubes/{name}/memories/list", tags=["memories"], responses=_ERRORS)
    def list_by_body(body: ListBody, cube: Cube) -> Page:
        """``GET .../memories`` with the filters in the body."""
        return _page(cube, body.filters, body.limit, body.offset)

    @app.post("/v1/cubes/{name}/count", tags=["memories"], responses=_ERRORS)
    def count(body: NamespacesBody, cube: Cube) -> dict[str, int]:
        """How many memories match ``filters``."""
        return {"count": cube.count(body.filters)}

    @app.get("/v1/cubes/{name}/memories/{id}", tags=["memories"], responses=_ERRORS)
    def get(id: str, cube: Cube) -> MemoryItem:
        return cube.get(id)

    @app.patch("/v1/cubes/{name}/memories/{id}", tags=["memories"], responses=_ERRORS)
    def update(id: str, body: UpdateBody, cube: Cube) -> MemoryItem:
        """A new version; with ``expected_version`` a stale one is 409 and nothing is written."""
        return cube.update(
            id,
            body.content,
            tags=body.tags,
            metadata=body.metadata,
            scope=_plain(body.scope),
            expires_at=body.expires_at,
            expected_version=body.expected_version,
        )

    @app.delete(
        "/v1/cubes/{name}/memories/{id}", status_code=204, tags=["memories"], responses=_ERRORS
    )
    def delete(
        id: str,
        cube: Cube,
        purge: bool = False,
        expected_version: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        """Soft delete (a new version); ``purge=true`` erases (needs admin)."""
        cube.delete(id, purge=purge, expected_version=expected_version)
        return Response(status_code=204)

    @app.post("/v1/cubes/{name}/memories/{id}/restore", tags=["memories"], responses=_ERRORS)
    def restore(id: str, cube: Cube) -> MemoryItem:
        return cube.restore(id)

    @app.get("/v1/cubes/{name}/memories/{id}/history", tags=["memories"], responses=_ERRORS)
    def history(id: str, cube: Cube) -> list[MemoryItem]:
        """Every version this agent may see, oldest first."""
        return cube.history(id)

    # -- keyed memories (the LangGraph store) ---------------------------------------------
    @app.put("/v1/cubes/{name}/keys", tags=["keys"], responses=_ERRORS)
    def put(body: PutBody, cube: Cube) -> MemoryItem:
        return cube.put(
            tuple(body.namespace),
            body.key,
            body.content,
            value=body.value,
            scope=_plain(body.scope),
            tags=body.tags,
            metadata=body.metadata,
            ttl=None if body.ttl_s is None else timedelta(seconds=body.ttl_s),
        )

    @app.post("/v1/cubes/{name}/keys/lookup", tags=["keys"], responses=_ERRORS)
    def lookup(body: KeyBody, cube: Cube) -> Found:
        return Found(item=cube.lookup(tuple(body.namespace), body.key))

    @app.post("/v1/cubes/{name}/keys/refresh", tags=["keys"], responses=_ERRORS)
    def refresh(body: IdsBody, cube: Cube) -> list[MemoryItem]:
        return cube.refresh(body.ids)

    @app.post("/v1/cubes/{name}/keys/namespaces", tags=["keys"], responses=_ERRORS)
    def namespaces(body: NamespacesBody, cube: Cube) -> list[list[str]]:
        return [list(n) for n in cube.namespaces(tuple(body.prefix), filters=body.filters)]

    # -- quarantine and audit -------------------------------------------------------------
    @app.get("/v1/cubes/{name}/quarantine", tags=["review"], responses=_ERRORS)
    def quarantine(
        cube: Cube,
        limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> Page:
        """Memories waiting for review (cube admins)."""
        items = cube.quarantined(limit=limit + 1, offset=offset)
        return Page(items=items[:limit], next_offset=offset + limit if len(items) > limit else None)

    @app.post("/v1/cubes/{name}/memories/{id}/approve", tags=["review"], responses=_ERRORS)
    def approve(id: str, cube: Cube) -> MemoryItem:
        return cube.approve(id)

    @app.post("/v1/cubes/{name}/memories/{id}/reject", tags=["review"], responses=_ERRORS)
    def reject(id: str, cube: Cube) -> MemoryItem:
        return cube.reject(id)

    @app.get("/v1/cubes/{name}/audit", tags=["review"], responses=_ERRORS)
    def audit(
        cube: Cube,
        memory_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> list[AuditEntry]:
        """Who wrote, changed, approved and deleted what, newest first (cube admins)."""
        return cube.audit(memory_id=memory_id, limit=limit, offset=offset)

    # -- grants and policy (cube admins) --------------------------------------------------
    @app.get("/v1/cubes/{name}/grants", tags=["access"], responses=_ERRORS)
    def grants(cube: Admin) -> list[Grant]:
        return os_.access.grants(cube=cube.name)

    @app.put("/v1/cubes/{name}/grants/{agent}", tags=["access"], responses=_ERRORS)
    def grant(agent: str, body: GrantBody, cube: Admin, me: Caller) -> Grant:
        return os_.access.grant(
            agent, cube.name, body.right, scope=_plain(body.scope), by=me.agent.name
        )

    @app.delete(
        "/v1/cubes/{name}/grants/{agent}", status_code=204, tags=["access"], responses=_ERRORS
    )
    def revoke(agent: str, cube: Admin, me: Caller) -> Response:
        os_.access.revoke(agent, cube.name, by=me.agent.name)
        return Response(status_code=204)

    @app.put("/v1/cubes/{name}/policy", tags=["access"], responses=_ERRORS)
    def policy(body: PolicyBody, cube: Admin, me: Caller) -> dict[str, Any]:
        """The trust an agent needs for its writes to skip quarantine."""
        return os_.access.set_policy(
            cube.name, trust_threshold=body.trust_threshold, by=me.agent.name
        ).model_dump()

    # -- agents (operators) ---------------------------------------------------------------
    @app.get("/v1/agents", tags=["access"], responses=_ERRORS)
    def agents(me: Operator) -> list[Agent]:
        return os_.access.agents()

    @app.post("/v1/agents", status_code=201, tags=["access"], responses=_ERRORS)
    def create_agent(body: NewAgent, me: Operator) -> AgentKey:
        """A new agent; its key is in this response only."""
        agent, key = os_.access.create_agent(body.name, trust=body.trust, operator=body.operator)
        return AgentKey(agent=agent, key=key)

    @app.patch("/v1/agents/{agent}", tags=["access"], responses=_ERRORS)
    def change_agent(agent: str, body: AgentChange, me: Operator) -> Agent:
        return os_.access.update_agent(
            agent,
            trust=body.trust,
            disabled=body.disabled,
            operator=body.operator,
            by=me.agent.name,
        )

    @app.post("/v1/agents/{agent}/key", tags=["access"], responses=_ERRORS)
    def rotate(agent: str, me: Operator) -> AgentKey:
        """A new key for the agent (the old one stops working)."""
        key = os_.access.rotate_key(agent, by=me.agent.name)
        return AgentKey(agent=os_.access.agent(agent), key=key)

    @app.delete("/v1/agents/{agent}", status_code=204, tags=["access"], responses=_ERRORS)
    def delete_agent(agent: str, me: Operator) -> Response:
        os_.access.delete_agent(agent, by=me.agent.name)
        return Response(status_code=204)

    return app


class BackgroundServer:
    """The REST API served from a thread of this process, for tests and notebooks::

        with BackgroundServer(os_) as url:
            client = RemoteMemoryOS(url, api_key)

    ``port=0`` picks a free port. Production runs ``cubemem serve`` (its own process).
    """

    def __init__(self, os_: MemoryOS, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._server = uvicorn.Server(
            uvicorn.Config(create_app(os_), host=host, port=port, log_level="warning")
        )
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> str:
        self._thread = threading.Thread(target=self._server.run, name="cubemem-server")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise errors.BackendUnavailableError("the background server did not start")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI document (what ``/openapi.json`` serves; committed as
    ``docs/openapi.json``). Routes only reach the MemoryOS when called, so none is needed."""
    return create_app(cast(MemoryOS, None)).openapi()


def _plain(value: Any) -> Any:
    """Request models as the plain dicts the library takes (unset fields left out)."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value


def _page(cube: AgentCube, filters: Any, limit: int, offset: int) -> Page:
    items = cube.list(filters, limit=limit + 1, offset=offset)
    return Page(items=items[:limit], next_offset=offset + limit if len(items) > limit else None)
