"""``AgentCube``: a cube as one agent may use it, and who that agent is (``Identity``).

Every operation goes through ``AgentCube.run``: the agent is read again (``Identity``: a
disabled, deleted or re-keyed agent is refused on its next call, so a revocation reaches
long-lived processes such as a stdio MCP server at once), the operation's right is checked
with ``AccessControl.check`` — a denied call raises ``PermissionDeniedError`` and writes
nothing — and, for a write, it runs ``acting`` for the agent, so the write layer stamps the
author, fences it to the grant's scope and decides what is held for review
(``cubemem.ops.write.held``). The handlers (``writes``, ``reads``) audit what they did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cubemem import access
from cubemem.access import AccessControl, Agent, Grant, Right
from cubemem.cube import FiltersLike, MemCube, SharedCube
from cubemem.cube import operations as op
from cubemem.errors import AuthenticationError, ConflictError, NotFoundError, PermissionDeniedError
from cubemem.model import Filters, MemoryItem, Status
from cubemem.ops import redaction, write

if TYPE_CHECKING:
    from cubemem.manifest import Manifest

WIDTH = 64
"""How many more results a search asks for when some may be hidden from this agent."""
_T = TypeVar("_T")
R = TypeVar("R")
Handler = Callable[["AgentCube", Any, Grant], Any]
HANDLERS: op.Table[Handler] = op.Table("an agent's cube")


class Identity:
    """The agent a view acts for, read again from the access tables on every call.

    Held by key (a server or MCP process that authenticated with one), the key must still be
    the agent's: rotating it, disabling or deleting the agent ends the identity at the next
    call. Held by name (``MemoryOS.as_agent``), the agent must still exist and be enabled.
    Trust, operator status and grants are read fresh each time, so their changes take effect
    on the next call as well (no cache: staleness is one call)."""

    def __init__(self, access_control: AccessControl, agent: Agent, key: str | None = None):
        self._access = access_control
        self._id = agent.id
        self._key = key

    @property
    def access(self) -> AccessControl:
        return self._access

    def current(self) -> Agent:
        if self._key is not None:
            agent = self._access.authenticate(self._key)
            if agent is None or agent.id != self._id:
                raise AuthenticationError(
                    "this API key is no longer valid (rotated, or its agent disabled or "
                    "deleted); ask an operator for the agent's current key"
                )
            return agent
        try:
            agent = self._access.agent(self._id)
        except NotFoundError:
            raise AuthenticationError("this agent was deleted; nothing was done") from None
        if agent.disabled:
            raise AuthenticationError(f"agent {agent.name!r} is disabled; nothing was done")
        return agent


class AgentCube(SharedCube):
    """A ``MemCube`` as one agent may use it: same methods, each checked and audited."""

    def __init__(self, cube: MemCube, identity: Identity) -> None:
        self._cube = cube
        self._identity = identity
        self._access = identity.access
        self._agent = identity.current()

    # -- what it is -----------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self._cube.manifest

    @property
    def agent(self) -> Agent:
        """The agent, as of the last call."""
        return self._agent

    @property
    def cube(self) -> MemCube:
        """The underlying cube (unchecked: for the process that owns the MemoryOS)."""
        return self._cube

    def __repr__(self) -> str:
        return f"AgentCube(name={self.name!r}, agent={self._agent.name!r})"

    # -- the one place every operation goes through ---------------------------------------
    def run(self, operation: op.Operation[R]) -> R:
        """Read the agent again, check the right ``operation`` needs, run it as this agent
        (writes: stamped, fenced, held for review where the policy says), audit it."""
        handler = HANDLERS.of(operation)
        right = Right(op.needs(operation))
        operation = redaction.identified(self._cube._ctx, operation)  # names as stored
        if right is Right.READ:
            return cast(R, handler(self, operation, self._grant(right)))
        with self._acting(right) as grant, redaction.counting() as redacted:
            result = cast(R, handler(self, operation, grant))
        if redacted:  # what the cube's policy took out of this write: counts, never values
            detail = {"counts": dict(sorted(redacted.items()))}
            self._access.record(self.agent.name, "redact", self.name, detail=detail)
        return result

    def _grant(self, right: Right) -> Grant:
        """The agent's grant for ``right`` on this cube (read now), or the typed refusal."""
        self._agent = self._identity.current()
        grant = self._access.check(self._agent, self.name, right)
        named = redaction.identified_scope(self._cube._ctx, grant.scope)  # as the cube stores
        return grant if named is grant.scope else grant.model_copy(update={"scope": named})

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
        return write.author(item) == self._agent.name

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

    def _audit_items(self, action: str, items: Sequence[MemoryItem | str]) -> None:
        self._access.record_many(
            self._agent.name,
            action,
            self.name,
            [(i, 1) if isinstance(i, str) else (i.id, i.version) for i in items],
        )

    def iter(self, filters: FiltersLike = None, *, page_size: int = 500) -> Iterator[MemoryItem]:
        grant = self._grant(Right.READ)
        parsed = self._filters(filters, grant)
        return (i for i in self._cube.iter(parsed, page_size=page_size) if self._sees(i, grant))
