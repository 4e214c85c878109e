"""The words of access control: rights, agents, grants, policies, audit entries, the acting
agent of a write (``acting``) and scopes within a grant.
``cubemem.access`` re-exports every name."""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cubemem.errors import PermissionDeniedError
from cubemem.model import Scope

ACCESS_DB = "access.sqlite3"
KEY_PREFIX = "cm_"
DEFAULT_TRUST = 0.5
DEFAULT_THRESHOLD = 0.5
FLAG_KEY = "cubemem_flag"
"""Metadata key that carries why the screen flagged a memory (which of its fields, and why)."""
PROPOSAL_KEY = "cubemem_proposal"
"""Metadata key of a held change to an existing memory: JSON naming the memory, the version
the change was made against and the fields it changes (``cubemem.ops.write.propose``)."""


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


# -- the store ------------------------------------------------------------------------------
SCHEMA = """
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
