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

import json
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cubemem import limits
from cubemem.access.instructions import normalise, screen, screen_fields
from cubemem.access.records import (
    ACCESS_DB,
    DEFAULT_THRESHOLD,
    DEFAULT_TRUST,
    FLAG_KEY,
    KEY_PREFIX,
    PROPOSAL_KEY,
    SCHEMA,
    Actor,
    Agent,
    AuditEntry,
    CubePolicy,
    Grant,
    Right,
    acting,
    current_actor,
    fit_scope,
    hash_key,
    in_scope,
)
from cubemem.access.tables import (
    SELECT_AGENTS,
    SqliteTables,
    agent_row,
    label,
    plain_changes,
    read_audit,
    right_value,
    scope_dump,
    scope_value,
    trust_value,
    write_audit,
)
from cubemem.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from cubemem.limits import shown
from cubemem.model import Scope, new_id, utcnow
from cubemem.store.catalog import DuplicateError, PostgresTables

__all__ = [
    "ACCESS_DB",
    "DEFAULT_THRESHOLD",
    "DEFAULT_TRUST",
    "FLAG_KEY",
    "KEY_PREFIX",
    "PROPOSAL_KEY",
    "SCHEMA",
    "AccessControl",
    "Actor",
    "Agent",
    "AuditEntry",
    "CubePolicy",
    "Grant",
    "Right",
    "acting",
    "current_actor",
    "fit_scope",
    "hash_key",
    "in_scope",
    "normalise",
    "screen",
    "screen_fields",
]


class AccessControl:
    """Agents, grants, cube policies and the audit log of one MemoryOS root."""

    def __init__(
        self,
        root: str | Path,
        *,
        busy_timeout_s: float = 30.0,
        store_url: str | None = None,
        cubes: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._cubes = cubes
        """The cubes that exist (from the MemoryOS): a grant names one of them."""
        self._tables: SqliteTables | PostgresTables = (
            PostgresTables(store_url)
            if store_url is not None and store_url.startswith(("postgresql://", "postgres://"))
            else SqliteTables(Path(root) / ACCESS_DB, busy_timeout_s)
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
        name = label(name, "agent name")
        trust = trust_value(trust)
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
        rows = self._tables.rows(SELECT_AGENTS + " WHERE key_hash = ?", (hash_key(key),))
        agent = agent_row(rows[0]) if rows else None
        return None if agent is None or agent.disabled else agent

    def agent(self, ref: str) -> Agent:
        """An agent by id or by name."""
        if not isinstance(ref, str):
            raise InvalidInputError(f"an agent is named by its id or name, got {shown(ref)}")
        rows = self._tables.rows(SELECT_AGENTS + " WHERE id = ? OR name = ?", (ref, ref))
        if not rows:
            raise NotFoundError(f"no agent {ref!r}; list them with `cubemem agents list`")
        return agent_row(rows[0])

    def agents(self) -> list[Agent]:
        return [agent_row(r) for r in self._tables.rows(SELECT_AGENTS + " ORDER BY created_at, id")]

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
            changes["trust"] = trust_value(changes["trust"])
        for flag in ("disabled", "operator"):
            if flag in changes and not isinstance(changes[flag], bool):
                raise InvalidInputError(f"{flag} must be true or false")
        if not changes:
            return agent
        with self._tables.write() as db:
            for column, value in changes.items():
                stored = int(value) if isinstance(value, bool) else value
                db.execute(f"UPDATE {{agents}} SET {column} = ? WHERE id = ?", (stored, agent.id))
            self._audit(
                db, by, "agent.update", None, detail={"agent": agent.id, **plain_changes(changes)}
            )
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
        """Give (or replace) ``ref``'s right on ``cube`` (one that exists)."""
        agent = self.agent(ref)
        cube = label(cube, "cube name")
        if self._cubes is not None and cube not in self._cubes():
            raise NotFoundError(
                f"no cube {cube!r} to grant on; create it first (`cubemem cubes create {cube} "
                "--data ROOT`, POST /v1/cubes or MemoryOS.create_cube)"
            )
        grant = Grant(
            agent=agent.id,
            cube=cube,
            right=right_value(right),
            scope=scope_value(scope),
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
                detail={
                    "agent": grant.agent,
                    "right": grant.right.value,
                    "scope": scope_dump(scope),
                },
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
        threshold = trust_value(trust_threshold, "trust_threshold")
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
            self._audit(
                db, agent, action, cube, memory_id=memory_id, version=version, detail=detail
            )

    def record_many(
        self, agent: str | None, action: str, cube: str | None, items: list[tuple[str, int]]
    ) -> None:
        with self._tables.write() as db:
            for memory_id, version in items:
                self._audit(db, agent, action, cube, memory_id=memory_id, version=version)

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
        return read_audit(self._tables, cube, memory_id, limit, offset)

    def _audit(
        self, db: Any, agent: str | None, action: str, cube: str | None, **entry: Any
    ) -> None:
        """One audit row in ``db``'s transaction; ``entry``: memory_id, version, detail."""
        assert set(entry) <= {"memory_id", "version", "detail"}, entry
        write_audit(db, agent, action, cube, **entry)
