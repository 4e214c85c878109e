"""The web inspector at ``/ui``: cubes, memories, search, a memory's versions, the quarantine
queue and the audit log, in server-rendered pages (Jinja2, autoescaped: memories are untrusted
text) that load nothing from outside the server.

Security is the API's: a visitor logs in with an agent or operator key, which is kept on the
server for a session whose id lives in an HttpOnly, SameSite=Strict cookie; every page reads
the agent again through ``MemoryOS.authenticate`` (a rotated key or a revoked grant takes
effect at the next click) and acts as that agent, so grants, scopes and the audit log apply as
they do to REST. Every form carries the session's CSRF token, and a post without it is
refused (403).
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cubemem import errors
from cubemem.model import MemoryItem
from cubemem.server.plumbing import Allowance, allowance, cube_of
from cubemem.settings import Settings
from cubemem.shared import AgentCube, AgentOS

COOKIE = "cubemem_ui"
LOGIN_COOKIE = "cubemem_ui_login"
SESSION_S = 8 * 3600
PAGE = 50
_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)
router = APIRouter(prefix="/ui", include_in_schema=False)


class Sessions:
    """Logged-in browsers: session id -> (key, CSRF token, expiry); this process only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[str, str, float]] = {}

    def open(self, key: str) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._by_id[session] = (key, secrets.token_urlsafe(32), time.time() + SESSION_S)
        return session

    def get(self, session: str | None) -> tuple[str, str] | None:
        with self._lock:
            found = self._by_id.get(session or "")
            if found is None or found[2] < time.time():
                self._by_id.pop(session or "", None)
                return None
            return found[0], found[1]

    def close(self, session: str | None) -> None:
        with self._lock:
            self._by_id.pop(session or "", None)


class Visitor:
    """Who is looking: the agent the session's key names, read again on every request."""

    def __init__(self, me: AgentOS, csrf: str) -> None:
        self.me, self.csrf = me, csrf

    def cube(self, name: str) -> AgentCube:
        return cube_of(name, self.me)  # as the API opens it: the grant checked, or refused


class LoginNeeded(Exception):
    pass


def _sessions(request: Request) -> Sessions:
    return cast(Sessions, request.app.state.ui_sessions)


def visitor(request: Request) -> Visitor:
    found = _sessions(request).get(request.cookies.get(COOKIE))
    if found is None:
        raise LoginNeeded
    key, csrf = found
    me = request.app.state.os.authenticate(key)
    if me is None:  # the key was rotated or the agent disabled since the login
        _sessions(request).close(request.cookies.get(COOKIE))
        raise LoginNeeded
    allowance(request).take(me.agent.id)  # pages count against the agent's rate, as the API
    return Visitor(me, csrf)


Seen = Annotated[Visitor, Depends(visitor)]


def checked(request: Request, you: Seen, csrf: Annotated[str, Form()] = "") -> Visitor:
    """A form post from this session's own pages (its CSRF token), else 403."""
    if not secrets.compare_digest(csrf, you.csrf):
        raise errors.PermissionDeniedError("the form's CSRF token is missing or wrong; reload it")
    return you


Posted = Annotated[Visitor, Depends(checked)]


def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, **values)
    return HTMLResponse(html, status_code=status)


# -- logging in ------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, error: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", status=401 if error else 200, csrf=token, error=error)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/ui")
    return response


@router.post("/login")
def login(
    request: Request, key: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf, expected):
        raise errors.PermissionDeniedError("the login form's CSRF token is missing or wrong")
    _attempt(request, failed=False)
    me = request.app.state.os.authenticate(key.strip()) if key.strip() else None
    if me is None:
        _attempt(request, failed=True)
        return login_form(request, error="unknown or disabled key")
    return _logged_in(request, key.strip())


@router.get("/login/once")
def login_once(request: Request, token: str = "") -> Response:
    """The one-time link ``cubemem ui`` prints: a session for its operator, once."""
    _attempt(request, failed=False)
    with _ONCE_LOCK:
        key = request.app.state.ui_once.pop(token, None) if token else None
    if key is None or request.app.state.os.authenticate(key) is None:
        _attempt(request, failed=True)
        return login_form(request, error="this login link was used already, or is unknown")
    return _logged_in(request, key)


def _attempt(request: Request, *, failed: bool) -> None:
    """Failed logins are counted per client address (``Settings.login_attempts_per_minute``),
    and past the count every attempt is refused (429) until the minute refills: keys cannot
    be guessed at speed."""
    client = request.client.host if request.client is not None else "?"
    logins = cast(Allowance, request.app.state.ui_logins)
    logins.take(client, spend=failed, what="failed logins a minute from this address")


def one_time_login(app: FastAPI, key: str) -> str:
    """A token for ``/ui/login/once`` that opens one session for ``key``."""
    token = secrets.token_urlsafe(32)
    with _ONCE_LOCK:
        app.state.ui_once[token] = key
    return token


_ONCE_LOCK = threading.Lock()


def _logged_in(request: Request, key: str) -> Response:
    response = RedirectResponse("/ui", status_code=303)
    session = _sessions(request).open(key)
    response.set_cookie(
        COOKIE, session, httponly=True, samesite="strict", path="/ui", max_age=SESSION_S
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    me = request.app.state.os.authenticate(key)
    request.app.state.os.access.record(me.agent.name, "ui.login", None)
    return response


@router.post("/logout")
def logout(request: Request, you: Posted) -> Response:
    _sessions(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# -- pages -----------------------------------------------------------------------------------
@router.get("")
def cubes(request: Request, you: Seen) -> HTMLResponse:
    rows = []
    for name in you.me.list_cubes():
        try:
            rows.append((name, you.cube(name).stats()))
        except errors.PermissionDeniedError:
            continue
    return page(request, "cubes.html", you=you, cubes=rows)


FILTERS = ("user", "agent", "session", "kind", "tag", "status", "after", "before")


@router.get("/cubes/{name}")
def memories(request: Request, name: str, you: Seen, offset: int = 0) -> HTMLResponse:
    cube = you.cube(name)
    given = {k: v for k in FILTERS if (v := request.query_params.get(k))}
    filters: dict[str, Any] = {k: v for k, v in given.items() if k not in ("tag", "status")}
    if "tag" in given:
        filters["tags"] = [given["tag"]]
    if "status" in given:
        filters["status"] = [given["status"]]
    offset = max(0, offset)
    items = cube.list(filters, limit=PAGE + 1, offset=offset)
    more = urlencode(given | {"offset": offset + PAGE}) if len(items) > PAGE else None
    back = urlencode(given | {"offset": max(0, offset - PAGE)}) if offset else None
    return page(
        request, "memories.html", you=you, cube=name, items=items[:PAGE], given=given,
        filters=FILTERS, more=more, back=back, offset=offset,
    )  # fmt: skip


@router.get("/cubes/{name}/search")
def search(request: Request, name: str, you: Seen, q: str = "", as_of: str = "") -> HTMLResponse:
    cube = you.cube(name)
    results = cube.search(q, k=20, as_of=as_of or None) if q.strip() else []
    return page(request, "search.html", you=you, cube=name, q=q, results=results, as_of=as_of)


@router.get("/cubes/{name}/memories/{id}")
def memory(request: Request, name: str, id: str, you: Seen) -> HTMLResponse:
    cube = you.cube(name)
    item = cube.get(id)
    versions = cube.history(id)
    diffs = [(b, _diff(a, b)) for a, b in itertools.pairwise(versions)]
    first = versions[0] if versions else None
    return page(request, "memory.html", you=you, cube=name, item=item, first=first, diffs=diffs)


def _diff(old: MemoryItem, new: MemoryItem) -> list[str]:
    lines = difflib.unified_diff(
        old.content.splitlines(), new.content.splitlines(), f"v{old.version}", f"v{new.version}",
        lineterm="",
    )  # fmt: skip
    return list(lines)


@router.get("/cubes/{name}/review")
def review(request: Request, name: str, you: Seen, offset: int = 0) -> HTMLResponse:
    offset = max(0, offset)
    held = you.cube(name).quarantined(limit=PAGE + 1, offset=offset)
    more = offset + PAGE if len(held) > PAGE else None
    back = max(0, offset - PAGE) if offset else None
    return page(
        request, "review.html", you=you, cube=name, held=held[:PAGE], more=more, back=back,
        offset=offset,
    )  # fmt: skip


@router.post("/cubes/{name}/review/{id}/{verdict}")
def decide(name: str, id: str, verdict: str, you: Posted) -> Response:
    cube = you.cube(name)
    if verdict == "approve":
        cube.approve(id)
    elif verdict == "reject":
        cube.reject(id)
    else:
        raise errors.InvalidInputError(f"verdict must be approve or reject, got {verdict!r}")
    return RedirectResponse(f"/ui/cubes/{name}/review", status_code=303)


@router.get("/cubes/{name}/audit")
def audit(request: Request, name: str, you: Seen, offset: int = 0) -> HTMLResponse:
    entries = you.cube(name).audit(limit=PAGE, offset=max(0, offset))
    return page(request, "audit.html", you=you, cube=name, entries=entries, offset=offset)


# -- the entity graph, as of a date -----------------------------------------------------------
@router.get("/cubes/{name}/entities")
def entities(request: Request, name: str, you: Seen, q: str = "", as_of: str = "") -> HTMLResponse:
    found = you.cube(name).entities(q or None, as_of=as_of or None, limit=100)
    return page(request, "entities.html", you=you, cube=name, entities=found, q=q, as_of=as_of)


@router.get("/cubes/{name}/entities/{entity}")
def entity(request: Request, name: str, entity: str, you: Seen, as_of: str = "") -> HTMLResponse:
    around = you.cube(name).neighbourhood(entity, hops=1, as_of=as_of or None)
    return page(
        request, "entity.html", you=you, cube=name, around=around, as_of=as_of,
        graph=_layout(around),
    )  # fmt: skip


def _layout(around: Any) -> dict[str, Any]:
    """The neighbourhood as an SVG drawing: the entity in the middle, its neighbours on a
    circle, a line for each relation (drawn on the server: no script)."""
    size, radius = 560, 210
    centre = size / 2
    others = [e for e in around.entities if e.id != around.center.id][:24]
    spots = {around.center.id: (centre, centre)}
    for n, other in enumerate(others):
        angle = 2 * math.pi * n / max(len(others), 1)
        spots[other.id] = (centre + radius * math.cos(angle), centre + radius * math.sin(angle))
    lines = [
        (*spots[r.source.id], *spots[r.target.id], r.kind, r.weight)
        for r in around.relations
        if r.source.id in spots and r.target.id in spots
    ]
    nodes = [(e, *spots[e.id]) for e in [around.center, *others]]
    return {"size": size, "lines": lines, "nodes": nodes}


# -- forget, agents, grants ------------------------------------------------------------------
@router.get("/cubes/{name}/memories/{id}/forget")
def forget_form(request: Request, name: str, id: str, you: Seen) -> HTMLResponse:
    item = you.cube(name).get(id)
    return page(request, "forget.html", you=you, cube=name, item=item)


@router.post("/cubes/{name}/memories/{id}/forget")
def forget(request: Request, name: str, id: str, you: Posted) -> HTMLResponse:
    gone = you.cube(name).forget([id])  # cube admins only; audited by ids and count
    return page(request, "forgotten.html", you=you, cube=name, gone=gone)


@router.get("/cubes/{name}/grants")
def grants(request: Request, name: str, you: Seen) -> HTMLResponse:
    you.cube(name)
    rows = you.me.grants(name)  # cube admins (within a scoped admin's scope)
    names = {a.id: a.name for a in request.app.state.os.access.agents()}
    return page(request, "grants.html", you=you, cube=name, grants=rows, names=names)


@router.post("/cubes/{name}/grants")
def grant(
    name: str, you: Posted, agent: Annotated[str, Form()], right: Annotated[str, Form()]
) -> Response:
    you.me.grant(agent.strip(), name, right, scope=None)
    return RedirectResponse(f"/ui/cubes/{name}/grants", status_code=303)


@router.post("/cubes/{name}/grants/{agent}/revoke")
def revoke(name: str, agent: str, you: Posted) -> Response:
    you.me.revoke(agent, name)
    return RedirectResponse(f"/ui/cubes/{name}/grants", status_code=303)


def _operator(you: Visitor) -> Any:
    if not you.me.agent.operator:
        raise errors.PermissionDeniedError("only operators manage agents")
    return you.me.access


@router.get("/agents")
def agents(request: Request, you: Seen) -> HTMLResponse:
    access = _operator(you)
    return page(request, "agents.html", you=you, agents=access.agents(), key=None)


@router.post("/agents")
def create_agent(
    request: Request,
    you: Posted,
    agent: Annotated[str, Form()],
    trust: Annotated[float, Form()] = 0.5,
) -> HTMLResponse:
    access = _operator(you)
    made, key = access.create_agent(agent.strip(), trust=trust)
    shown = (made.name, key)  # the key is shown this once, as the API answers it once
    return page(request, "agents.html", you=you, agents=access.agents(), key=shown)


@router.post("/agents/{agent}/key")
def rotate_key(request: Request, agent: str, you: Posted) -> HTMLResponse:
    access = _operator(you)
    key = access.rotate_key(agent, by=you.me.agent.name)
    shown = (agent, key)
    return page(request, "agents.html", you=you, agents=access.agents(), key=shown)


def install_ui(app: FastAPI) -> None:
    """Mount the inspector on ``app``: its routes, sessions and error pages."""
    app.state.ui_sessions = Sessions()
    settings = app.state.os.settings if app.state.os is not None else Settings()
    app.state.ui_logins = Allowance(settings.login_attempts_per_minute, 1)
    app.state.ui_once = {}
    app.include_router(router)

    @app.exception_handler(LoginNeeded)
    async def _login(request: Request, exc: LoginNeeded) -> Response:
        return RedirectResponse("/ui/login", status_code=303)

    previous = app.exception_handlers[errors.CubememError]  # the API's JSON answers

    @app.exception_handler(errors.CubememError)
    async def _error(request: Request, exc: errors.CubememError) -> Response:
        if not request.url.path.startswith("/ui"):
            answer = previous(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        kind, message = type(exc).__name__, str(exc)
        return page(request, "error.html", status=exc.http_status, kind=kind, message=message)
