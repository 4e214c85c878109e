"""Shared memory: a MemoryOS and its cubes as one agent sees them.

``MemoryOS.as_agent(name)`` (in process) or ``MemoryOS.authenticate(key)`` (the server) give
an ``AgentOS``; its cubes are ``AgentCube`` objects with the surface of every cube
(``cubemem.cube.BaseCube``). An ``AgentCube`` is a runner (``view``): each call reads the
agent again, checks the operation's right, runs it acting for the agent — stamped, fenced to
the grant's scope, and held for review where the policy says (``cubemem.ops.write.held``) —
and audits it (``writes``, ``reads``). One place for every operation.

Grants are managed here too (``AgentOS.grant``/``revoke``/``grants``): a cube admin whose own
grant has a scope gives and sees grants only within that scope, never changes its own grant,
and leaves the cube's trust policy to an admin of the whole cube.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Protocol

from cubemem.access import AccessControl, Agent, CubePolicy, Grant, Right, fit_scope, in_scope
from cubemem.cube import MemCube
from cubemem.cube.across import CubeSet
from cubemem.cube.runner import threaded
from cubemem.errors import PermissionDeniedError
from cubemem.model import Scope
from cubemem.shared import reads, writes
from cubemem.shared.view import HANDLERS, AgentCube, Identity

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["HANDLERS", "AgentCube", "AgentOS", "Cubes", "Identity", "reads", "writes"]


class Cubes(Protocol):
    """What an agent's view needs of a MemoryOS (``cubemem.os`` builds on this module, so
    it is named by what it does, not imported)."""

    @property
    def root(self) -> Path: ...

    @property
    def access(self) -> AccessControl: ...

    def list_cubes(self) -> builtins.list[str]: ...

    def open_cube(self, name: str) -> MemCube: ...

    def create_cube(self, name: str, *, owner: str | None = None) -> MemCube: ...


class AgentOS(CubeSet):
    """The cubes of a MemoryOS as ``agent`` may use them (``key``: the API key it
    authenticated with, which must stay valid for each later call)."""

    def __init__(self, os_: Cubes, agent: Agent, key: str | None = None) -> None:
        self._os = os_
        self._identity = Identity(os_.access, agent, key)
        self._agent = agent

    @property
    def agent(self) -> Agent:
        """The agent, read again (``PermissionDeniedError`` once disabled, deleted or
        re-keyed)."""
        self._agent = self._identity.current()
        return self._agent

    @property
    def access(self) -> AccessControl:
        return self._os.access

    def __repr__(self) -> str:
        return f"AgentOS(agent={self._agent.name!r}, root={str(self._os.root)!r})"

    def list_cubes(self) -> builtins.list[str]:
        """The cubes this agent holds a grant on (every cube, for an operator)."""
        return self._os.access.readable(self.agent, self._os.list_cubes())

    def open_cube(self, name: str) -> AgentCube:
        """The cube ``name`` as this agent may use it (it needs a grant on it)."""
        self._os.access.check(self.agent, name, Right.READ)
        return AgentCube(self._os.open_cube(name), self._identity)

    def create_cube(self, name: str) -> AgentCube:
        """A new cube (operators only); the operator administers it."""
        agent = self.agent
        if not agent.operator:
            raise PermissionDeniedError(
                f"agent {agent.name!r} may not create cubes; an operator creates the cube "
                "and grants this agent a right on it"
            )
        cube = self._os.create_cube(name, owner=agent.name)
        self._os.access.record(agent.name, "cube.create", name)
        return AgentCube(cube, self._identity)

    # -- grants -----------------------------------------------------------------------------
    def _admin(self, cube: str) -> tuple[Agent, Grant]:
        agent = self.agent
        return agent, self._os.access.check(agent, cube, Right.ADMIN)

    def grants(self, cube: str) -> builtins.list[Grant]:
        """The grants on ``cube`` (those within its scope, for a scoped admin)."""
        agent, mine = self._admin(cube)
        every = self._os.access.grants(cube=cube)
        return [g for g in every if g.agent == agent.id or _within(g.scope, mine.scope)]

    def grant(
        self, agent: str, cube: str, right: Right | str, *, scope: Scope | dict[str, Any] | None
    ) -> Grant:
        """Give ``agent`` ``right`` on ``cube``. A scoped admin grants only within its own
        scope (the fields its scope fixes are filled in; others are refused) and never
        changes its own grant."""
        me, mine = self._admin(cube)
        other = self._os.access.agent(agent)
        if mine.scope is not None:
            if other.id == me.id:
                raise PermissionDeniedError(
                    f"agent {me.name!r} may not change its own grant on cube {cube!r}; an "
                    "admin of the whole cube or an operator does"
                )
            given = scope if isinstance(scope, Scope) else Scope(**(scope or {}))
            scope = fit_scope(given, mine.scope)
            theirs = self._os.access.grants(agent=other.id, cube=cube)
            if theirs and not _within(theirs[0].scope, mine.scope):
                raise PermissionDeniedError(
                    f"agent {other.name!r}'s grant on cube {cube!r} reaches beyond agent "
                    f"{me.name!r}'s scope; an admin of the whole cube changes it"
                )
        return self._os.access.grant(other.id, cube, right, scope=scope, by=me.name)

    def revoke(self, agent: str, cube: str) -> None:
        """Take ``agent``'s grant on ``cube`` away (within a scoped admin's scope only)."""
        me, mine = self._admin(cube)
        other = self._os.access.agent(agent)
        theirs = self._os.access.grants(agent=other.id, cube=cube)
        if mine.scope is not None and (
            other.id == me.id or (theirs and not _within(theirs[0].scope, mine.scope))
        ):
            raise PermissionDeniedError(
                f"agent {me.name!r} may revoke only grants within its own scope on cube {cube!r}"
            )
        self._os.access.revoke(other.id, cube, by=me.name)

    def set_policy(self, cube: str, *, trust_threshold: float) -> CubePolicy:
        """The trust an agent needs for its writes to skip review (an admin of the whole
        cube: the policy applies to every scope)."""
        me, mine = self._admin(cube)
        if mine.scope is not None:
            raise PermissionDeniedError(
                f"agent {me.name!r} administers only part of cube {cube!r}; the trust policy "
                "is set by an admin of the whole cube"
            )
        return self._os.access.set_policy(cube, trust_threshold=trust_threshold, by=me.name)

    alist_cubes = threaded(list_cubes)
    aopen_cube = threaded(open_cube)
    acreate_cube = threaded(create_cube)
    agrants = threaded(grants)
    agrant = threaded(grant)
    arevoke = threaded(revoke)
    aset_policy = threaded(set_policy)


def _within(scope: Scope | None, allowed: Scope | None) -> bool:
    """Whether every memory ``scope`` reaches is within ``allowed``."""
    if allowed is None:
        return True
    if scope is None:
        return False
    return in_scope(scope, allowed)
