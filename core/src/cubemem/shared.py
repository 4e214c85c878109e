"""Shared memory: a MemoryOS and its cubes as one agent sees them.

``MemoryOS.as_agent(name)`` (in process) or ``MemoryOS.authenticate(key)`` (the server) give
an ``AgentOS``; its cubes are ``AgentCube`` objects with the surface of ``MemCube`` (add,
search, get, update, delete, history, put, ...). Every call goes through
``AccessControl.check`` first — a denied call raises ``PermissionDeniedError`` and writes
nothing — and every write is made ``acting`` for the agent, so the write layer stamps the
author on the memory and on each version, fences it to the grant's scope, and quarantines it
when the agent's trust is below the cube's threshold or its text reads like an instruction.

What an agent sees: memories within its grant's scope; never another agent's quarantined
memory (or quarantined version) unless it administers the cube.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from cubemem import access
from cubemem.access import AccessControl, Agent, AuditEntry, Grant, Right
from cubemem.cube import FiltersLike, MemCube, MessageLike, ScopeLike
from cubemem.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from cubemem.model import Filters, MemoryItem, MetadataValue, SearchResult, Status
from cubemem.ops import inputs, write
from cubemem.ops.context import ContentLike

if TYPE_CHECKING:
    from cubemem.manifest import Manifest
    from cubemem.os import MemoryOS

_WIDTH = 64
"""How many more results a search asks for when some may be hidden from this agent."""
_T = TypeVar("_T")


class AgentOS:
    """The cubes of a MemoryOS as ``agent`` may use them."""

    def __init__(self, os_: MemoryOS, agent: Agent) -> None:
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

    def search(
        self,
        query: str,
        *,
        cubes: list[str] | None = None,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        """``MemoryOS.search`` over the cubes this agent may read (default: all of them)."""
        inputs.positive_int(k, "k")
        names = self.list_cubes() if cubes is None else inputs.as_list(cubes, "cubes")
        merged: list[SearchResult] = []
        for name in dict.fromkeys(names):
            for hit in self.open_cube(name).search(
                query,
                k=k,
                filters=filters,
                min_score=min_score,
                include_superseded=include_superseded,
            ):
                merged.append(hit.model_copy(update={"cube_name": name}))
        merged.sort(key=lambda r: r.score, reverse=True)
        return merged[:k]

    async def asearch(
        self,
        query: str,
        *,
        cubes: list[str] | None = None,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        return await asyncio.to_thread(
            self.search,
            query,
            cubes=cubes,
            k=k,
            filters=filters,
            min_score=min_score,
            include_superseded=include_superseded,
        )


class AgentCube:
    """A ``MemCube`` as one agent may use it: same methods, each checked and audited."""

    def __init__(self, cube: MemCube, access_control: AccessControl, agent: Agent) -> None:
        self._cube = cube
        self._access = access_control
        self._agent = agent

    # -- what it is -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._cube.name

    @property
    def id(self) -> str:
        return self._cube.id

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

    # -- the one check --------------------------------------------------------------------
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

    # -- writing --------------------------------------------------------------------------
    def add(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        """``MemCube.add`` as this agent (needs ``write``)."""
        with self._acting():
            result = self._cube.add(
                content,
                scope=scope,
                tags=tags,
                metadata=metadata,
                wait=wait,
                idempotency_key=self._key(idempotency_key),
            )
        self._audit("add", result if isinstance(result, list) else [result])
        return result

    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        """``MemCube.add_messages`` as this agent (needs ``write``)."""
        with self._acting():
            result = self._cube.add_messages(
                messages,
                session=session,
                timestamp=timestamp,
                scope=scope,
                tags=tags,
                metadata=metadata,
                wait=wait,
                idempotency_key=self._key(idempotency_key),
            )
        self._audit("add", result)
        return result

    def update(
        self,
        id: str,
        content: str | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        scope: ScopeLike = None,
        expires_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        """``MemCube.update`` as this agent (needs ``write`` within its scope)."""
        with self._acting() as grant:
            if scope is not None:
                scope = access.fit_scope(inputs.scope(scope), grant.scope)
            _, new = self._on_visible(
                id,
                grant,
                expected_version,
                lambda version: self._cube.update(
                    id,
                    content,
                    tags=tags,
                    metadata=metadata,
                    scope=scope,
                    expires_at=expires_at,
                    expected_version=version,
                ),
            )
        self._audit("update", [new])
        return new

    def delete(self, id: str, *, purge: bool = False, expected_version: int | None = None) -> None:
        """``MemCube.delete`` as this agent (``write``; ``purge`` needs ``admin``)."""
        with self._acting(Right.ADMIN if purge else Right.WRITE) as grant:
            current, _ = self._on_visible(
                id,
                grant,
                expected_version,
                lambda version: self._cube.delete(id, purge=purge, expected_version=version),
            )
        self._access.record(
            self._agent.name,
            "purge" if purge else "delete",
            self.name,
            memory_id=id,
            version=None if purge else current.version + 1,
        )

    def restore(self, id: str, *, expected_version: int | None = None) -> MemoryItem:
        """``MemCube.restore`` as this agent (needs ``write``)."""
        with self._acting() as grant:
            _, item = self._on_visible(
                id,
                grant,
                expected_version,
                lambda version: self._cube.restore(id, expected_version=version),
            )
        self._audit("restore", [item])
        return item

    def put(
        self,
        namespace: Sequence[str],
        key: str,
        content: str,
        *,
        value: dict[str, Any] | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        ttl: timedelta | None = None,
    ) -> MemoryItem:
        """``MemCube.put`` as this agent (needs ``write``)."""
        with self._acting() as grant:
            current = self._cube.lookup(namespace, key)
            if current is not None and not self._sees(current, grant):
                raise PermissionDeniedError(
                    f"key {key!r} holds a memory outside agent {self._agent.name!r}'s scope"
                )
            if scope is not None:
                scope = access.fit_scope(inputs.scope(scope), grant.scope)
            item = self._cube.put(
                namespace,
                key,
                content,
                value=value,
                scope=scope,
                tags=tags,
                metadata=metadata,
                ttl=ttl,
            )
        self._audit("put", [item])
        return item

    def refresh(self, ids: Sequence[str]) -> builtins.list[MemoryItem]:
        """``MemCube.refresh`` (part of reading a keyed memory with a ttl: needs ``read``)."""
        grant = self._grant(Right.READ)
        wanted = [i for i in inputs.memory_ids(ids) if self._try_visible(i, grant)]
        return self._cube.refresh(wanted)

    def _try_visible(self, id: str, grant: Grant) -> bool:
        try:
            self._visible(id, grant)
        except NotFoundError:
            return False
        return True

    # -- quarantine -----------------------------------------------------------------------
    def quarantined(self, *, limit: int = 100, offset: int = 0) -> builtins.list[MemoryItem]:
        """Memories waiting for review, oldest first (needs ``admin``)."""
        self._grant(Right.ADMIN)
        return self._cube.list({"status": "quarantined"}, limit=limit, offset=offset)

    def approve(self, id: str) -> MemoryItem:
        """Publish a quarantined memory (needs ``admin``): it becomes visible to every reader."""
        with self._acting(Right.ADMIN):
            current = self._cube.get(id)
            if current.status is not Status.QUARANTINED:
                raise InvalidInputError(
                    f"memory {id} is {current.status.value}, not quarantined; nothing to approve"
                )
            item = write.revise(
                self._cube.context,
                id,
                {"status": Status.ACTIVE, "decision_reason": f"approved by {self._agent.name}"},
                expected_version=current.version,
            )
        self._audit("approve", [item])
        return item

    def reject(self, id: str) -> MemoryItem:
        """Refuse a quarantined memory (needs ``admin``): a new memory is deleted; a quarantined
        change to an existing one is rolled back to the version before it."""
        with self._acting(Right.ADMIN):
            current = self._cube.get(id)
            if current.status is not Status.QUARANTINED:
                raise InvalidInputError(
                    f"memory {id} is {current.status.value}, not quarantined; nothing to reject"
                )
            earlier = [v for v in self._cube.history(id)[:-1] if v.status is not Status.QUARANTINED]
            changes: dict[str, Any] = {"status": Status.DELETED}
            if earlier:
                last = earlier[-1]
                changes = {
                    "content": last.content,
                    "tags": last.tags,
                    "metadata": last.metadata,
                    "scope": last.scope,
                    "status": last.status,
                }
            changes["decision_reason"] = f"rejected by {self._agent.name}"
            item = write.revise(self._cube.context, id, changes, expected_version=current.version)
        self._audit("reject", [item])
        return item

    def audit(
        self, *, memory_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[AuditEntry]:
        """Who wrote, changed, approved and deleted what in this cube, newest first
        (needs ``admin``)."""
        self._grant(Right.ADMIN)
        return self._access.audit(cube=self.name, memory_id=memory_id, limit=limit, offset=offset)

    # -- reading --------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]:
        """``MemCube.search`` within what this agent may read."""
        grant = self._grant(Right.READ)
        parsed = self._filters(filters, grant)
        hidden = Status.QUARANTINED in parsed.status and grant.right is not Right.ADMIN
        found = self._cube.search(
            query,
            k=inputs.positive_int(k, "k") + (_WIDTH if hidden else 0),
            filters=parsed,
            min_score=min_score,
            include_superseded=include_superseded,
        )
        return [r for r in found if self._sees(r.item, grant)][:k]

    def get(self, id: str) -> MemoryItem:
        """``MemCube.get`` (``NotFoundError`` for what this agent may not see)."""
        return self._visible(inputs.memory_id(id), self._grant(Right.READ))

    def history(self, id: str) -> builtins.list[MemoryItem]:
        """``MemCube.history``, without other agents' quarantined versions."""
        grant = self._grant(Right.READ)
        self._visible(inputs.memory_id(id), grant)
        return [v for v in self._cube.history(id) if self._sees(v, grant)]

    def list(
        self, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[MemoryItem]:
        """``MemCube.list`` within what this agent may read."""
        grant = self._grant(Right.READ)
        parsed = self._filters(filters, grant)
        if Status.QUARANTINED not in parsed.status or grant.right is Right.ADMIN:
            return self._cube.list(parsed, limit=limit, offset=offset)
        seen = (i for i in self._cube.iter(parsed) if self._sees(i, grant))
        page = [i for n, i in enumerate(seen) if n >= offset and n < offset + limit]
        return page

    def iter(self, filters: FiltersLike = None, *, page_size: int = 500) -> Iterator[MemoryItem]:
        grant = self._grant(Right.READ)
        parsed = self._filters(filters, grant)
        return (i for i in self._cube.iter(parsed, page_size=page_size) if self._sees(i, grant))

    def count(self, filters: FiltersLike = None) -> int:
        grant = self._grant(Right.READ)
        parsed = self._filters(filters, grant)
        if Status.QUARANTINED not in parsed.status or grant.right is Right.ADMIN:
            return self._cube.count(parsed)
        return sum(1 for _ in self.iter(parsed))

    def __len__(self) -> int:
        return self.count()

    def lookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        grant = self._grant(Right.READ)
        item = self._cube.lookup(namespace, key)
        return item if item is not None and self._sees(item, grant) else None

    def namespaces(
        self, prefix: Sequence[str] = (), *, filters: FiltersLike = None
    ) -> builtins.list[tuple[str, ...]]:
        grant = self._grant(Right.READ)
        return self._cube.namespaces(prefix, filters=self._filters(filters, grant))

    def stats(self) -> dict[str, Any]:
        self._grant(Right.READ)
        return self._cube.stats()

    # -- async twins (each runs its sync twin off the event loop) -------------------------
    async def aadd(self, content: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(lambda: self.add(content, **kwargs))

    async def aadd_messages(self, messages: Sequence[MessageLike], **kwargs: Any) -> Any:
        return await asyncio.to_thread(lambda: self.add_messages(messages, **kwargs))

    async def aupdate(self, id: str, content: str | None = None, **kwargs: Any) -> MemoryItem:
        return await asyncio.to_thread(lambda: self.update(id, content, **kwargs))

    async def adelete(self, id: str, **kwargs: Any) -> None:
        await asyncio.to_thread(lambda: self.delete(id, **kwargs))

    async def asearch(self, query: str, **kwargs: Any) -> builtins.list[SearchResult]:
        return await asyncio.to_thread(lambda: self.search(query, **kwargs))

    async def aget(self, id: str) -> MemoryItem:
        return await asyncio.to_thread(self.get, id)

    async def ahistory(self, id: str) -> builtins.list[MemoryItem]:
        return await asyncio.to_thread(self.history, id)

    async def alist(self, filters: FiltersLike = None, **kwargs: Any) -> builtins.list[MemoryItem]:
        return await asyncio.to_thread(lambda: self.list(filters, **kwargs))
