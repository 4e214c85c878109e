"""Who may do what to which cube: agents, API keys, grants, trust, quarantine and the audit log.

A MemoryOS with no agents is the local, single-user path: nothing here is consulted. Once an
agent exists, calls made *as* an agent (``MemoryOS.as_agent``, the server, the MCP server) go
through ``AccessControl.check``, the one place a right is decided:

- an **agent** has an id, a name, a **trust** level in [0, 1] and an API key (shown once at
  creation; only its SHA-256 is stored — keys are 256 random bits, so a fast hash is as safe
  as a slow one and keeps every request cheap). ``operator`` agents manage agents and cubes.
- a **grant** gives an agent ``read``, ``write`` (implies read) or ``admin`` (implies write:
  approve, reject, grant) on one cube, optionally narrowed to a ``Scope`` (a write grant with
  ``Scope(agent="bot")`` lets the agent write only memories of its own agent scope, and read
  only those).
- each cube has a **trust threshold** (``Settings``-free, stored here; default 0.5): writes by
  agents below it land ``quarantined`` — stored, audited, invisible to other agents — until a
  cube admin approves them. Text that reads like an instruction to a model (``screen``) is
  quarantined too, whoever writes it, unless they administer the cube.

Everything is kept in one SQLite file (``access.sqlite3``) beside the cubes, or, for a
MemoryOS on PostgreSQL, in the database (``store/catalog.py``), where servers on other
machines find the same agents and grants.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cubemem import limits
from cubemem.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from cubemem.limits import shown
from cubemem.model import Scope, new_id, utcnow
from cubemem.sqlite import immediate
from cubemem.store.catalog import DuplicateError, PostgresTables

ACCESS_DB = "access.sqlite3"
KEY_PREFIX = "cm_"
DEFAULT_TRUST = 0.5
DEFAULT_THRESHOLD = 0.5
FLAG_KEY = "cubemem_flag"
"""Metadata key that carries why the screen flagged a memory's text."""


class Right(StrEnum):
    """What a grant allows on a cube; each includes the ones before it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def covers(self, other: Right) -> bool:
        order = [Right.READ, Right.WRITE, Right.ADMIN]
        return order.index(self) >= order.index(other)


class Agent(BaseModel):
    """An identity that calls cubemem: never holds its key, only who it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    trust: float = Field(DEFAULT_TRUST, ge=0.0, le=1.0)
    operator: bool = Field(False, description="May manage agents, grants and cubes.")
    disabled: bool = False
    created_at: datetime


class Grant(BaseModel):
    """``agent`` holds ``right`` on ``cube``, within ``scope`` when one is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str
    cube: str
    right: Right
    scope: Scope | None = None


class CubePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cube: str
    trust_threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0)


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    at: datetime
    agent: str | None
    action: str
    cube: str | None
    memory_id: str | None = None
    version: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Actor:
    """The agent a write is made for, as the write layer sees it (``acting``)."""

    agent: str
    """The agent's name: what provenance, versions and the audit log record."""
    trust: float
    quarantine: bool
    """Writes land quarantined (trust below the cube's threshold)."""
    screen: bool
    """Instruction-like text lands quarantined (the agent does not administer the cube)."""
    scope: Scope | None = None
    """The scope a narrowed write grant allows; empty fields of a write are filled from it."""


_ACTOR: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("cubemem_actor", default=None)


def current_actor() -> Actor | None:
    """The agent the running write is made for; None on the local, unidentified path."""
    return _ACTOR.get()


@contextmanager
def acting(actor: Actor | None) -> Iterator[None]:
    """Make the writes inside the block on behalf of ``actor`` (stamped, screened)."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def fit_scope(scope: Scope, allowed: Scope | None) -> Scope:
    """``scope`` with the fields ``allowed`` fixes filled in; a field set otherwise is refused."""
    if allowed is None:
        return scope
    fields = {}
    for name in ("user", "agent", "session"):
        mine, theirs = getattr(scope, name), getattr(allowed, name)
        if theirs is not None and mine not in (None, theirs):
            raise PermissionDeniedError(
                f"this agent may write only memories with {name}={theirs!r}, not {mine!r}; "
                f"leave {name} unset or ask a cube admin for a wider grant"
            )
        fields[name] = mine if theirs is None else theirs
    return Scope(**fields)


def in_scope(scope: Scope, allowed: Scope | None) -> bool:
    return allowed is None or all(
        getattr(allowed, f) is None or getattr(scope, f) == getattr(allowed, f)
        for f in ("user", "agent", "session")
    )


# -- the screen -----------------------------------------------------------------------------
_INSTRUCTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "overrides earlier instructions",
        re.compile(
            r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|"
            r"all|your|system)\b[^.\n]{0,20}\b(instructions?|prompts?|rules|guidelines|context)",
            re.I,
        ),
    ),
    (
        "addresses the model",
        re.compile(
            r"\b(you are now|from now on,? you|as an ai|assistant must|the assistant should|"
            r"you must (always|never)|always (respond|answer|reply)|never (tell|mention|reveal))",
            re.I,
        ),
    ),
    (
        "asks for secrets or tools",
        re.compile(
            r"\b(reveal|print|send|leak|exfiltrate|output)\b[^.\n]{0,30}\b(system prompt|"
            r"api[ _-]?keys?|passwords?|credentials|secrets?|tokens?)\b",
            re.I,
        ),
    ),
    (
        "carries prompt markup",
        re.compile(
            r"(<\|?(im_start|im_end|system|endoftext)\|?>|\[/?INST\]|^\s*#{2,}\s*(system|"
            r"instruction)|</?(system|memories)>)",
            re.I | re.M,
        ),
    ),
    (
        "new instructions",
        re.compile(r"\b(new|updated|real|actual) (instructions?|system prompt|rules)\b", re.I),
    ),
]


def screen(text: str) -> list[str]:
    """Why ``text`` reads like an instruction to a model rather than a memory ([] if it
    does not). A simple pattern screen (in the spirit of A-MemGuard's first line): it flags
    for a human to review, it does not decide."""
    return [reason for reason, pattern in _INSTRUCTION_PATTERNS if pattern.search(text)]


# -- the store ------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL UNIQUE,
    trust REAL NOT NULL, operator INTEGER NOT NULL, disabled INTEGER NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    agent TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, cube TEXT NOT NULL,
    "right" TEXT NOT NULL, scope TEXT, PRIMARY KEY (agent, cube));
CREATE TABLE IF NOT EXISTS cubes (cube TEXT PRIMARY KEY, trust_threshold REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, agent TEXT, action TEXT NOT NULL,
    cube TEXT, memory_id TEXT, version INTEGER, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_cube ON audit(cube, seq);
"""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class AccessControl:
    """Agents, grants, cube policies and the audit log of one MemoryOS root."""

    def __init__(
        self, root: str | Path, *, busy_timeout_s: float = 30.0, store_url: str | None = None
    ) -> None:
        self._tables: _SqliteTables | PostgresTables = (
            PostgresTables(store_url)
            if store_url is not None and store_url.startswith(("postgresql://", "postgres://"))
            else _SqliteTables(Path(root) / ACCESS_DB, busy_timeout_s)
        )

    def close(self) -> None:
        self._tables.close()

    @property
    def configured(self) -> bool:
        """Whether any agent exists (if not, the MemoryOS is on the local path)."""
        return bool(self._tables.rows("SELECT 1 FROM {agents} LIMIT 1"))

    # -- agents ---------------------------------------------------------------------------
    def create_agent(
        self, name: str, *, trust: float = DEFAULT_TRUST, operator: bool = False
    ) -> tuple[Agent, str]:
        """A new agent and its API key. The key is returned this once and never stored."""
        name = _label(name, "agent name")
        trust = _trust(trust)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        agent = Agent(id=new_id(), name=name, trust=trust, operator=operator, created_at=utcnow())
        exists = InvalidInputError(f"an agent named {name!r} exists; choose another name")
        try:
            with self._tables.write() as db:
                if db.execute("SELECT 1 FROM {agents} WHERE name = ?", (name,)).fetchone():
                    raise exists
                db.execute(
                    "INSERT INTO {agents} VALUES (?, ?, ?, ?, ?, 0, ?)",
                    (
                        agent.id,
                        name,
                        hash_key(key),
                        trust,
                        int(operator),
                        agent.created_at.isoformat(),
                    ),
                )
                self._audit(
                    db, None, "agent.create", None, detail={"agent": agent.id, "name": name}
                )
        except DuplicateError:  # another process made one of that name in between
            raise exists from None
        return agent, key

    def authenticate(self, key: Any) -> Agent | None:
        """The enabled agent whose key this is, else None."""
        if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        rows = self._tables.rows(_SELECT_AGENTS + " WHERE key_hash = ?", (hash_key(key),))
        agent = _agent(rows[0]) if rows else None
        return None if agent is None or agent.disabled else agent

    def agent(self, ref: str) -> Agent:
        """An agent by id or by name."""
        if not isinstance(ref, str):
            raise InvalidInputError(f"an agent is named by its id or name, got {shown(ref)}")
        rows = self._tables.rows(_SELECT_AGENTS + " WHERE id = ? OR name = ?", (ref, ref))
        if not rows:
            raise NotFoundError(f"no agent {ref!r}; list them with `cubemem agents list`")
        return _agent(rows[0])

    def agents(self) -> list[Agent]:
        return [_agent(r) for r in self._tables.rows(_SELECT_AGENTS + " ORDER BY created_at, id")]

    def update_agent(
        self,
        ref: str,
        *,
        trust: float | None = None,
        disabled: bool | None = None,
        operator: bool | None = None,
        by: str | None = None,
    ) -> Agent:
        agent = self.agent(ref)
        changes = {
            k: v
            for k, v in {"trust": trust, "disabled": disabled, "operator": operator}.items()
            if v is not None
        }
        if "trust" in changes:
            changes["trust"] = _trust(changes["trust"])
        for flag in ("disabled", "operator"):
            if flag in changes and not isinstance(changes[flag], bool):
                raise InvalidInputError(f"{flag} must be true or false")
        if not changes:
            return agent
        with self._tables.write() as db:
            for column, value in changes.items():
                stored = int(value) if isinstance(value, bool) else value
                db.execute(f"UPDATE {{agents}} SET {column} = ? WHERE id = ?", (stored, agent.id))
            self._audit(db, by, "agent.update", None, detail={"agent": agent.id, **_plain(changes)})
        return self.agent(agent.id)

    def rotate_key(self, ref: str, *, by: str | None = None) -> str:
        """A new key for the agent; the old one stops working at once."""
        agent = self.agent(ref)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._tables.write() as db:
            db.execute("UPDATE {agents} SET key_hash = ? WHERE id = ?", (hash_key(key), agent.id))
            self._audit(db, by, "agent.rotate_key", None, detail={"agent": agent.id})
        return key

    def delete_agent(self, ref: str, *, by: str | None = None) -> None:
        """Remove the agent and its grants (its memories and audit entries stay)."""
        agent = self.agent(ref)
        with self._tables.write() as db:
            db.execute("DELETE FROM {agents} WHERE id = ?", (agent.id,))
            self._audit(db, by, "agent.delete", None, detail={"agent": agent.id})

    # -- grants ---------------------------------------------------------------------------
    def grant(
        self,
        ref: str,
        cube: str,
        right: Right | str,
        *,
        scope: Scope | dict[str, Any] | None = None,
        by: str | None = None,
    ) -> Grant:
        """Give (or replace) ``ref``'s right on ``cube``."""
        agent = self.agent(ref)
        grant = Grant(
            agent=agent.id,
            cube=_label(cube, "cube name"),
            right=_right(right),
            scope=_scope(scope),
        )
        with self._tables.write() as db:
            db.execute(
                "INSERT INTO {grants} VALUES (?, ?, ?, ?) ON CONFLICT (agent, cube) DO UPDATE "
                'SET "right" = excluded."right", scope = excluded.scope',
                (
                    grant.agent,
                    grant.cube,
                    grant.right.value,
                    None if grant.scope is None else grant.scope.model_dump_json(),
                ),
            )
            self._audit(
                db,
                by,
                "grant",
                grant.cube,
                detail={"agent": grant.agent, "right": grant.right.value, "scope": _dump(scope)},
            )
        return grant

    def revoke(self, ref: str, cube: str, *, by: str | None = None) -> None:
        agent = self.agent(ref)
        with self._tables.write() as db:
            db.execute("DELETE FROM {grants} WHERE agent = ? AND cube = ?", (agent.id, cube))
            self._audit(db, by, "revoke", cube, detail={"agent": agent.id})

    def grants(self, *, agent: str | None = None, cube: str | None = None) -> list[Grant]:
        sql, args = 'SELECT agent, cube, "right", scope FROM {grants} WHERE 1=1', list[Any]()
        if agent is not None:
            sql, args = sql + " AND agent = ?", [*args, self.agent(agent).id]
        if cube is not None:
            sql, args = sql + " AND cube = ?", [*args, cube]
        rows = self._tables.rows(sql + " ORDER BY cube, agent", args)
        return [
            Grant(
                agent=a, cube=c, right=Right(r), scope=None if s is None else Scope(**json.loads(s))
            )
            for a, c, r, s in rows
        ]

    def check(self, agent: Agent, cube: str, right: Right) -> Grant:
        """The grant that lets ``agent`` do ``right`` on ``cube``, or ``PermissionDeniedError``
        naming what is missing. Operators hold ``admin`` on every cube."""
        if agent.operator:
            return Grant(agent=agent.id, cube=cube, right=Right.ADMIN)
        found = self.grants(agent=agent.id, cube=cube)
        if not found:
            raise PermissionDeniedError(
                f"agent {agent.name!r} holds no grant on cube {cube!r}; it needs {right.value!r} "
                "(a cube admin grants it: `cubemem grant`)"
            )
        if not found[0].right.covers(right):
            raise PermissionDeniedError(
                f"agent {agent.name!r} holds {found[0].right.value!r} on cube {cube!r}; this "
                f"needs {right.value!r}"
            )
        return found[0]

    def readable(self, agent: Agent, cubes: list[str]) -> list[str]:
        if agent.operator:
            return cubes
        held = {g.cube for g in self.grants(agent=agent.id)}
        return [c for c in cubes if c in held]

    # -- cube policy ----------------------------------------------------------------------
    def policy(self, cube: str) -> CubePolicy:
        rows = self._tables.rows("SELECT trust_threshold FROM {cubes} WHERE cube = ?", (cube,))
        return CubePolicy(cube=cube, trust_threshold=rows[0][0] if rows else DEFAULT_THRESHOLD)

    def set_policy(self, cube: str, *, trust_threshold: float, by: str | None = None) -> CubePolicy:
        threshold = _trust(trust_threshold, "trust_threshold")
        with self._tables.write() as db:
            db.execute(
                "INSERT INTO {cubes} VALUES (?, ?) ON CONFLICT (cube) DO UPDATE "
                "SET trust_threshold = excluded.trust_threshold",
                (cube, threshold),
            )
            self._audit(db, by, "policy", cube, detail={"trust_threshold": threshold})
        return CubePolicy(cube=cube, trust_threshold=threshold)

    def actor(self, agent: Agent, cube: str, grant: Grant) -> Actor:
        """How ``agent``'s writes to ``cube`` are stamped and screened under ``grant``."""
        admin = grant.right is Right.ADMIN
        return Actor(
            agent=agent.name,
            trust=agent.trust,
            quarantine=not admin and agent.trust < self.policy(cube).trust_threshold,
            screen=not admin,
            scope=grant.scope,
        )

    # -- audit ----------------------------------------------------------------------------
    def record(
        self,
        agent: str | None,
        action: str,
        cube: str | None,
        *,
        memory_id: str | None = None,
        version: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._tables.write() as db:
            self._audit(db, agent, action, cube, memory_id, version, detail)

    def record_many(
        self, agent: str | None, action: str, cube: str | None, items: list[tuple[str, int]]
    ) -> None:
        with self._tables.write() as db:
            for memory_id, version in items:
                self._audit(db, agent, action, cube, memory_id, version)

    def audit(
        self,
        *,
        cube: str | None = None,
        memory_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Entries, newest first."""
        limit, offset = limits.count(limit, "limit"), limits.count(offset, "offset")
        sql = (
            "SELECT seq, at, agent, action, cube, memory_id, version, detail FROM {audit} WHERE 1=1"
        )
        args = list[Any]()
        if cube is not None:
            sql, args = sql + " AND cube = ?", [*args, cube]
        if memory_id is not None:
            sql, args = sql + " AND memory_id = ?", [*args, memory_id]
        rows = self._tables.rows(
            sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        return [
            AuditEntry(
                seq=s, at=datetime.fromisoformat(at), agent=a, action=act, cube=c,
                memory_id=m, version=v, detail=json.loads(d),
            )
            for s, at, a, act, c, m, v, d in rows
        ]  # fmt: skip

    def _audit(
        self,
        db: Any,
        agent: str | None,
        action: str,
        cube: str | None,
        memory_id: str | None = None,
        version: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO {audit} (at, agent, action, cube, memory_id, version, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                utcnow().isoformat(),
                agent,
                action,
                cube,
                memory_id,
                version,
                json.dumps(detail or {}),
            ),
        )


_SELECT_AGENTS = "SELECT id, name, trust, operator, disabled, created_at FROM {agents}"


class _SqliteTables:
    """The access tables in one SQLite file; statements name tables as ``{table}``."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self.write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def rows(self, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(_named(statement), params).fetchall()

    @contextmanager
    def write(self) -> Iterator[Any]:
        try:
            with immediate(self._db, self._lock, "the access database") as db:
                yield _Named(db)
        except sqlite3.IntegrityError as exc:
            raise DuplicateError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Named:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, statement: str, params: Any = ()) -> sqlite3.Cursor:
        return self._db.execute(_named(statement), params)


def _named(statement: str) -> str:
    return statement.format(agents="agents", grants="grants", cubes="cubes", audit="audit")


def _agent(row: tuple[Any, ...]) -> Agent:
    id_, name, trust, operator, disabled, created = row
    return Agent(
        id=id_,
        name=name,
        trust=trust,
        operator=bool(operator),
        disabled=bool(disabled),
        created_at=datetime.fromisoformat(created),
    )


_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def _label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise InvalidInputError(
            f"{what} {shown(value)} must be 1-128 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


def _trust(value: Any, what: str = "trust") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInputError(f"{what} must be a number from 0 to 1, got {shown(value)}")
    return float(value)


def _right(value: Any) -> Right:
    try:
        return Right(value)
    except ValueError:
        raise InvalidInputError(
            f"right must be one of {[r.value for r in Right]}, got {shown(value)}"
        ) from None


def _scope(value: Any) -> Scope | None:
    if value is None or isinstance(value, Scope):
        return value
    if not isinstance(value, dict) or set(value) - {"user", "agent", "session"}:
        raise InvalidInputError(
            f"a grant's scope is a dict of user/agent/session, got {shown(value)}"
        )
    return Scope(**{k: limits.text(v, f"scope {k}") for k, v in value.items() if v is not None})


def _dump(scope: Any) -> Any:
    return scope.model_dump(exclude_none=True) if isinstance(scope, Scope) else scope


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in changes.items()}
