"""Shared memory: a MemoryOS and its cubes as one agent sees them.

``MemoryOS.as_agent(name)`` (in process) or ``MemoryOS.authenticate(key)`` (the server) give
an ``AgentOS``; its cubes are ``AgentCube`` objects with the surface of every cube
(``cubemem.cube.BaseCube``). An ``AgentCube`` is a runner: ``run(operation)`` checks the
operation's right with ``AccessControl.check`` first — a denied call raises
``PermissionDeniedError`` and writes nothing — then runs it on the local cube ``acting`` for
the agent, so the write layer stamps the author on the memory and on each version, fences it
to the grant's scope, and quarantines it when the agent's trust is below the cube's threshold
or its text reads like an instruction; and audits it. One place for every operation.

What an agent sees: memories within its grant's scope; never another agent's quarantined
memory (or quarantined version) unless it administers the cube.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from cubemem import access
from cubemem.access import AccessControl, Agent, Grant, Right
from cubemem.cube import FiltersLike, MemCube, SharedCube
from cubemem.cube import operations as op
from cubemem.cube.across import CubeSet
from cubemem.cube.runner import threaded
from cubemem.errors import ConflictError, NotFoundError, PermissionDeniedError
from cubemem.model import Filters, MemoryItem, Status
from cubemem.ops import inputs, review, write

if TYPE_CHECKING:
    from pathlib import Path

    from cubemem.manifest import Manifest


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


_WIDTH = 64
"""How many more results a search asks for when some may be hidden from this agent."""
_T = TypeVar("_T")
R = TypeVar("R")
Handler = Callable[["AgentCube", Any, Grant], Any]
HANDLERS: op.Table[Handler] = op.Table("an agent's cube")


class AgentOS(CubeSet):
    """The cubes of a MemoryOS as ``agent`` may use them."""

    def __init__(self, os_: Cubes, agent: Agent) -> None:
        self._os = os_
        self._agent = agent

    @property
    def agent(self) -> Agent:
        return self._agent

    @property
    def access(self) -> AccessControl:
        return self._os.access

    def __repr__(self) -> str:
        return f"AgentOS(agent={self._agent.name!r}, root={str(self._os.root)!r})"

    def list_cubes(self) -> builtins.list[str]:
        """The cubes this agent holds a grant on (every cube, for an operator)."""
        return self._os.access.readable(self._agent, self._os.list_cubes())

    def open_cube(self, name: str) -> AgentCube:
        """The cube ``name`` as this agent may use it (it needs a grant on it)."""
        self._os.access.check(self._agent, name, Right.READ)
        return AgentCube(self._os.open_cube(name), self._os.access, self._agent)

    def create_cube(self, name: str) -> AgentCube:
        """A new cube (operators only); the operator administers it."""
        if not self._agent.operator:
            raise PermissionDeniedError(
                f"agent {self._agent.name!r} may not create cubes; an operator creates the cube "
                "and grants this agent a right on it"
            )
        cube = self._os.create_cube(name, owner=self._agent.name)
        self._os.access.record(self._agent.name, "cube.create", name)
        return AgentCube(cube, self._os.access, self._agent)

    alist_cubes = threaded(list_cubes)
    aopen_cube = threaded(open_cube)
    acreate_cube = threaded(create_cube)


class AgentCube(SharedCube):
    """A ``MemCube`` as one agent may use it: same methods, each checked and audited."""

    def __init__(self, cube: MemCube, access_control: AccessControl, agent: Agent) -> None:
        self._cube = cube
        self._access = access_control
        self._agent = agent

    # -- what it is -----------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self._cube.manifest

    @property
    def agent(self) -> Agent:
        return self._agent

    @property
    def cube(self) -> MemCube:
        """The underlying cube (unchecked: for the process that owns the MemoryOS)."""
        return self._cube

    def __repr__(self) -> str:
        return f"AgentCube(name={self.name!r}, agent={self._agent.name!r})"

    # -- the one place every operation goes through ---------------------------------------
    def run(self, operation: op.Operation[R]) -> R:
        """Check the right ``operation`` needs, run it as this agent, audit it."""
        handler = HANDLERS.of(operation)
        right = Right(op.needs(operation))
        if right is Right.READ:
            return cast(R, handler(self, operation, self._grant(right)))
        with self._acting(right) as grant:
            return cast(R, handler(self, operation, grant))

    def _grant(self, right: Right) -> Grant:
        return self._access.check(self._agent, self.name, right)

    @contextmanager
    def _acting(self, right: Right = Right.WRITE) -> Iterator[Grant]:
        grant = self._grant(right)
        with access.acting(self._access.actor(self._agent, self.name, grant)):
            yield grant

    def _sees(self, item: MemoryItem, grant: Grant) -> bool:
        if not access.in_scope(item.scope, grant.scope):
            return False
        if item.status is not Status.QUARANTINED or grant.right is Right.ADMIN:
            return True
        return (item.changed_by or item.provenance.author_agent) == self._agent.name

    def _visible(self, id: str, grant: Grant) -> MemoryItem:
        item = self._cube.get(id)
        if not self._sees(item, grant):
            raise NotFoundError(f"no memory {id!r} in cube {self.name!r}")
        return item

    def _on_visible(
        self,
        id: str,
        grant: Grant,
        expected_version: int | None,
        change: Callable[[int], _T],
    ) -> tuple[MemoryItem, _T]:
        """``change(version)`` on the memory as this agent saw it: the write is pinned to the
        version whose visibility was checked, so a memory that became hidden in between (held
        for review) is not changed. Without ``expected_version`` a concurrent edit is checked
        again and this change applied on top, as ``MemCube`` does."""
        for _ in range(write.MAX_RETRIES):
            current = self._visible(id, grant)
            try:
                return current, change(
                    current.version if expected_version is None else expected_version
                )
            except ConflictError:
                if expected_version is not None:
                    raise
        raise ConflictError(
            f"memory {id} kept changing while agent {self._agent.name!r} wrote it; nothing was "
            "written. Retry",
            [id],
        )

    def _filters(self, filters: FiltersLike, grant: Grant) -> Filters:
        parsed = Filters.parse(filters)
        if grant.scope is None:
            return parsed
        fixed: dict[str, Any] = {}
        for field in ("user", "agent", "session"):
            theirs, mine = getattr(grant.scope, field), getattr(parsed, field)
            if theirs is not None and mine not in (None, theirs):
                raise PermissionDeniedError(
                    f"agent {self._agent.name!r} may read only {field}={theirs!r} in cube "
                    f"{self.name!r}, not {mine!r}"
                )
            if theirs is not None:
                fixed[field] = theirs
        return parsed.model_copy(update=fixed)

    def _hides_quarantine(self, parsed: Filters, grant: Grant) -> bool:
        return Status.QUARANTINED in parsed.status and grant.right is not Right.ADMIN

    def _key(self, idempotency_key: str | None) -> str | None:
        """Keys are per agent: two agents' retries never collide."""
        return None if idempotency_key is None else f"{self._agent.name}:{idempotency_key}"

    def _audit(self, action: str, items: Sequence[MemoryItem | str]) -> None:
        self._access.record_many(
            self._agent.name,
            action,
            self.name,
            [(i, 1) if isinstance(i, str) else (i.id, i.version) for i in items],
        )

    def _try_visible(self, id: str, grant: Grant) -> bool:
        try:
            self._visible(id, grant)
        except NotFoundError:
            return False
        return True

    def iter(self, filters: FiltersLike = None, *, page_size: int = 500) -> Iterator[MemoryItem]:
        grant = self._grant(Right.READ)
        parsed = self._filters(filters, grant)
        return (i for i in self._cube.iter(parsed, page_size=page_size) if self._sees(i, grant))


# -- writing ----------------------------------------------------------------------------------
@HANDLERS.runs(op.Add, op.AddMessages)
def _add(cube: AgentCube, o: op.Add | op.AddMessages, grant: Grant) -> Any:
    result = cube.cube.run(replace(o, idempotency_key=cube._key(o.idempotency_key)))
    cube._audit("add", result if isinstance(result, list) else [result])
    return result


@HANDLERS.runs(op.Update)
def _update(cube: AgentCube, o: op.Update, grant: Grant) -> MemoryItem:
    scope = o.scope
    if scope is not None:
        scope = access.fit_scope(inputs.scope(scope), grant.scope)
    _, new = cube._on_visible(
        o.id,
        grant,
        o.expected_version,
        lambda version: cube.cube.run(replace(o, scope=scope, expected_version=version)),
    )
    cube._audit("update", [new])
    return new


def _as_seen(cube: AgentCube, o: op.Delete | op.Restore, grant: Grant) -> tuple[MemoryItem, Any]:
    """Run ``o`` on a memory the agent may see, at the version it saw (``_on_visible``)."""

    def change(version: int) -> Any:
        again: op.Operation[Any] = replace(o, expected_version=version)
        return cube.cube.run(again)

    return cube._on_visible(o.id, grant, o.expected_version, change)


@HANDLERS.runs(op.Delete)
def _delete(cube: AgentCube, o: op.Delete, grant: Grant) -> None:
    current, _ = _as_seen(cube, o, grant)
    cube._access.record(
        cube.agent.name,
        "purge" if o.purge else "delete",
        cube.name,
        memory_id=o.id,
        version=None if o.purge else current.version + 1,
    )


@HANDLERS.runs(op.Restore)
def _restore(cube: AgentCube, o: op.Restore, grant: Grant) -> MemoryItem:
    _, item = _as_seen(cube, o, grant)
    cube._audit("restore", [item])
    return item


@HANDLERS.runs(op.Put)
def _put(cube: AgentCube, o: op.Put, grant: Grant) -> MemoryItem:
    current = cube.cube.lookup(o.namespace, o.key)
    if current is not None and not cube._sees(current, grant):
        raise PermissionDeniedError(
            f"key {o.key!r} holds a memory outside agent {cube.agent.name!r}'s scope"
        )
    scope = o.scope
    if scope is not None:
        scope = access.fit_scope(inputs.scope(scope), grant.scope)
    item = cube.cube.run(replace(o, scope=scope))
    cube._audit("put", [item])
    return item


@HANDLERS.runs(op.Refresh)
def _refresh(cube: AgentCube, o: op.Refresh, grant: Grant) -> list[MemoryItem]:
    wanted = [i for i in inputs.memory_ids(o.ids) if cube._try_visible(i, grant)]
    return cube.cube.refresh(wanted)


@HANDLERS.runs(op.Wait)
def _wait(cube: AgentCube, o: op.Wait, grant: Grant) -> bool:
    return cube.cube.run(o)


# -- review -----------------------------------------------------------------------------------
@HANDLERS.runs(op.Quarantined)
def _quarantined(cube: AgentCube, o: op.Quarantined, grant: Grant) -> list[MemoryItem]:
    return cube.cube.list({"status": "quarantined"}, limit=o.limit, offset=o.offset)


@HANDLERS.runs(op.Approve)
def _approve(cube: AgentCube, o: op.Approve, grant: Grant) -> MemoryItem:
    item = review.approve(cube.cube.maintenance.context, o.id, by=cube.agent.name)
    cube._audit("approve", [item])
    return item


@HANDLERS.runs(op.Reject)
def _reject(cube: AgentCube, o: op.Reject, grant: Grant) -> MemoryItem:
    item = review.reject(cube.cube.maintenance.context, o.id, by=cube.agent.name)
    cube._audit("reject", [item])
    return item


@HANDLERS.runs(op.Audit)
def _audit_log(cube: AgentCube, o: op.Audit, grant: Grant) -> Any:
    return cube._access.audit(cube=cube.name, memory_id=o.memory_id, limit=o.limit, offset=o.offset)


# -- reading ----------------------------------------------------------------------------------
@HANDLERS.runs(op.Search)
def _search(cube: AgentCube, o: op.Search, grant: Grant) -> Any:
    parsed = cube._filters(o.filters, grant)
    wider = inputs.positive_int(o.k, "k") + (_WIDTH if cube._hides_quarantine(parsed, grant) else 0)
    found = cube.cube.run(replace(o, k=wider, filters=parsed))
    return [r for r in found if cube._sees(r.item, grant)][: o.k]


@HANDLERS.runs(op.Get)
def _get(cube: AgentCube, o: op.Get, grant: Grant) -> MemoryItem:
    return cube._visible(inputs.memory_id(o.id), grant)


@HANDLERS.runs(op.History)
def _history(cube: AgentCube, o: op.History, grant: Grant) -> list[MemoryItem]:
    cube._visible(inputs.memory_id(o.id), grant)
    return [v for v in cube.cube.history(o.id) if cube._sees(v, grant)]


@HANDLERS.runs(op.List)
def _list(cube: AgentCube, o: op.List, grant: Grant) -> list[MemoryItem]:
    parsed = cube._filters(o.filters, grant)
    if not cube._hides_quarantine(parsed, grant):
        return cube.cube.list(parsed, limit=o.limit, offset=o.offset)
    seen = (i for i in cube.cube.iter(parsed) if cube._sees(i, grant))
    return [i for n, i in enumerate(seen) if o.offset <= n < o.offset + o.limit]


@HANDLERS.runs(op.Count)
def _count(cube: AgentCube, o: op.Count, grant: Grant) -> int:
    parsed = cube._filters(o.filters, grant)
    if not cube._hides_quarantine(parsed, grant):
        return cube.cube.count(parsed)
    return sum(1 for i in cube.cube.iter(parsed) if cube._sees(i, grant))


@HANDLERS.runs(op.Lookup)
def _lookup(cube: AgentCube, o: op.Lookup, grant: Grant) -> MemoryItem | None:
    item = cube.cube.lookup(o.namespace, o.key)
    return item if item is not None and cube._sees(item, grant) else None


@HANDLERS.runs(op.Namespaces)
def _namespaces(cube: AgentCube, o: op.Namespaces, grant: Grant) -> Any:
    return cube.cube.namespaces(o.prefix, filters=cube._filters(o.filters, grant))


@HANDLERS.runs(op.Stats)
def _stats(cube: AgentCube, o: op.Stats, grant: Grant) -> dict[str, Any]:
    return cube.cube.stats()
