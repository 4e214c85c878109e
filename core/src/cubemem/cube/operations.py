"""Every cube operation as a value (a frozen dataclass, as LangGraph's store ops are): what was
asked, as the caller gave it — validated where it runs. ``BaseCube`` builds one in each public
method for its runner: the local cube runs it on its ``Context`` (``cubemem.ops``), the agent
cube checks the grant, runs it as the agent and audits it, the remote cube makes a request.
REST routes and MCP tools are checked against ``CUBE_OPERATIONS`` (tests/shared/test_surfaces.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, TypeVar

from cubemem.access import AuditEntry
from cubemem.model import Filters, MemoryInput, MemoryItem, Message, SearchResult
from cubemem.model.governance import Forgotten
from cubemem.model.graph import Entity, Relation
from cubemem.model.graph import Neighbourhood as GraphNeighbourhood

R = TypeVar("R")
FiltersLike = Filters | dict[str, Any] | None
MessageLike = Message | dict[str, Any]
Progress = Callable[[int], None]
Right = Literal["read", "write", "admin"]


@dataclass(frozen=True, kw_only=True)
class Operation(Generic[R]):
    """One call on a cube; ``R`` is what running it returns."""

    method: ClassVar[str]
    """The ``BaseCube`` method that builds it (its async twin is ``a`` + method)."""
    right: ClassVar[Right]
    """What an agent needs on the cube to run it."""

    def arguments(self) -> dict[str, Any]:
        """The fields as keyword arguments (the method's parameters)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def parameters(self) -> dict[str, Any]:
        """The fields a caller gives (what a remote request sends): ``arguments`` without
        those the agent runner sets (a scoped grant's ``fence``)."""
        return {k: v for k, v in self.arguments().items() if k not in _RUNNER_SET}


_RUNNER_SET = frozenset({"fence"})


# -- writing ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Add(Operation[Any]):
    """Store one text or many (``single``: one was given, one is returned)."""

    method: ClassVar[str] = "add"
    right: ClassVar[Right] = "write"
    content: Any
    scope: Any = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    wait: bool = True
    idempotency_key: str | None = None
    valid_from: datetime | str | None = None
    valid_to: datetime | str | None = None

    @property
    def single(self) -> bool:
        return isinstance(self.content, str | MemoryInput | dict)


@dataclass(frozen=True, kw_only=True)
class AddMessages(Operation[Any]):
    """Store conversation turns raw, one memory a turn."""

    method: ClassVar[str] = "add_messages"
    right: ClassVar[Right] = "write"
    messages: Any
    session: str | None = None
    timestamp: datetime | str | None = None
    scope: Any = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    progress: Callable[[int], None] | None = field(default=None, compare=False)
    wait: bool = True
    idempotency_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Update(Operation[MemoryItem]):
    method: ClassVar[str] = "update"
    right: ClassVar[Right] = "write"
    id: str
    content: str | None = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    scope: Any = None
    expires_at: datetime | None = None
    expected_version: int | None = None
    valid_from: datetime | str | None = None
    """Set: a change in the world from then on (a successor), not a correction."""


@dataclass(frozen=True, kw_only=True)
class Invalidate(Operation[MemoryItem]):
    """End a fact's valid time without a successor."""

    method: ClassVar[str] = "invalidate"
    right: ClassVar[Right] = "write"
    id: str
    at: datetime | str | None = None
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class Delete(Operation["MemoryItem | None"]):
    method: ClassVar[str] = "delete"
    right: ClassVar[Right] = "write"  # purge: admin (``needs``)
    id: str
    purge: bool = False
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class Restore(Operation[MemoryItem]):
    method: ClassVar[str] = "restore"
    right: ClassVar[Right] = "write"
    id: str
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class Put(Operation[MemoryItem]):
    method: ClassVar[str] = "put"
    right: ClassVar[Right] = "write"
    namespace: Sequence[str]
    key: str
    content: str
    value: dict[str, Any] | None = None
    scope: Any = None
    tags: Sequence[str] | None = None
    metadata: dict[str, Any] | None = None
    ttl: timedelta | None = None


@dataclass(frozen=True, kw_only=True)
class Refresh(Operation[list[MemoryItem]]):
    """Extend the lifetime of keyed memories with a ttl (part of reading them)."""

    method: ClassVar[str] = "refresh"
    right: ClassVar[Right] = "read"
    ids: Sequence[str]


@dataclass(frozen=True, kw_only=True)
class Wait(Operation[bool]):
    """Until queued writes are stored and searchable (False on timeout)."""

    method: ClassVar[str] = "wait"
    right: ClassVar[Right] = "read"
    ids: Sequence[str]
    timeout: float = 30.0


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Search(Operation[list[SearchResult]]):
    method: ClassVar[str] = "search"
    right: ClassVar[Right] = "read"
    query: str
    k: int = 10
    filters: Any = None
    min_score: float | None = None
    include_superseded: bool = False
    as_of: datetime | str | None = None
    known_at: datetime | str | None = None


@dataclass(frozen=True, kw_only=True)
class Get(Operation[MemoryItem]):
    method: ClassVar[str] = "get"
    right: ClassVar[Right] = "read"
    id: str


@dataclass(frozen=True, kw_only=True)
class History(Operation[list[MemoryItem]]):
    method: ClassVar[str] = "history"
    right: ClassVar[Right] = "read"
    id: str


@dataclass(frozen=True, kw_only=True)
class List(Operation[list[MemoryItem]]):
    method: ClassVar[str] = "list"
    right: ClassVar[Right] = "read"
    filters: Any = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, kw_only=True)
class Count(Operation[int]):
    method: ClassVar[str] = "count"
    right: ClassVar[Right] = "read"
    filters: Any = None


@dataclass(frozen=True, kw_only=True)
class Lookup(Operation["MemoryItem | None"]):
    method: ClassVar[str] = "lookup"
    right: ClassVar[Right] = "read"
    namespace: Sequence[str]
    key: str


@dataclass(frozen=True, kw_only=True)
class Namespaces(Operation[list[tuple[str, ...]]]):
    method: ClassVar[str] = "namespaces"
    right: ClassVar[Right] = "read"
    prefix: Sequence[str] = ()
    filters: Any = None


@dataclass(frozen=True, kw_only=True)
class Entities(Operation[list[Entity]]):
    """Entities the visible memories mention, by a query's words or a name."""

    method: ClassVar[str] = "entities"
    right: ClassVar[Right] = "read"
    query: str | None = None
    name: str | None = None
    kind: str | None = None
    filters: Any = None
    as_of: datetime | str | None = None
    limit: int = 20


@dataclass(frozen=True, kw_only=True)
class Relations(Operation[list[Relation]]):
    method: ClassVar[str] = "relations"
    right: ClassVar[Right] = "read"
    entity: str
    filters: Any = None
    as_of: datetime | str | None = None
    limit: int = 20


@dataclass(frozen=True, kw_only=True)
class Neighbourhood(Operation[GraphNeighbourhood]):
    method: ClassVar[str] = "neighbourhood"
    right: ClassVar[Right] = "read"
    entity: str
    hops: int = 2
    filters: Any = None
    as_of: datetime | str | None = None
    limit: int = 50


@dataclass(frozen=True, kw_only=True)
class MergeEntities(Operation[Entity]):
    """Resolve one entity as another from now on (kept in the store's log; reversible)."""

    method: ClassVar[str] = "merge_entities"
    right: ClassVar[Right] = "admin"
    source: str
    target: str
    fence: Filters | None = None
    """Set by the agent runner from a scoped grant (not a caller's parameter): only entities
    of the memories inside it are found; any other is "not found", existing or not."""


@dataclass(frozen=True, kw_only=True)
class SplitEntity(Operation[list[Entity]]):
    """Undo merges of an entity."""

    method: ClassVar[str] = "split_entity"
    right: ClassVar[Right] = "admin"
    entity: str
    fence: Filters | None = None
    """As ``MergeEntities.fence``."""


@dataclass(frozen=True, kw_only=True)
class Stats(Operation[dict[str, Any]]):
    method: ClassVar[str] = "stats"
    right: ClassVar[Right] = "read"


# -- review (shared cubes: an agent's view and a server's) ----------------------------------------
@dataclass(frozen=True, kw_only=True)
class Quarantined(Operation[list[MemoryItem]]):
    """Memories waiting for review, oldest first."""

    method: ClassVar[str] = "quarantined"
    right: ClassVar[Right] = "admin"
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, kw_only=True)
class Approve(Operation[MemoryItem]):
    method: ClassVar[str] = "approve"
    right: ClassVar[Right] = "admin"
    id: str


@dataclass(frozen=True, kw_only=True)
class Reject(Operation[MemoryItem]):
    method: ClassVar[str] = "reject"
    right: ClassVar[Right] = "admin"
    id: str


@dataclass(frozen=True, kw_only=True)
class Forget(Operation[Forgotten]):
    """Erase memories and what was derived from them for good (``cubemem.ops.forget``)."""

    method: ClassVar[str] = "forget"
    right: ClassVar[Right] = "admin"
    ids: Sequence[str] | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None
    filters: FiltersLike = None
    fence: Filters | None = None
    """Set by the agent runner from a scoped grant (not a caller's parameter): the changes of
    fact and the derived memories a forget follows stay inside it."""


@dataclass(frozen=True, kw_only=True)
class Audit(Operation[list[AuditEntry]]):
    method: ClassVar[str] = "audit"
    right: ClassVar[Right] = "admin"
    memory_id: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, kw_only=True)
class SearchCubes(Operation[list[SearchResult]]):
    """One search over several cubes (default: every cube the caller may read), merged by
    score; each result names its cube."""

    method: ClassVar[str] = "search"
    right: ClassVar[Right] = "read"
    search: Search
    cubes: Sequence[str] | None = None


CUBE_OPERATIONS: tuple[type[Operation[Any]], ...] = (
    Add,
    AddMessages,
    Update,
    Invalidate,
    Delete,
    Restore,
    Put,
    Refresh,
    Wait,
    Search,
    Get,
    History,
    List,
    Count,
    Lookup,
    Namespaces,
    Entities,
    Relations,
    Neighbourhood,
    MergeEntities,
    SplitEntity,
    Forget,
    Stats,
)
"""What every cube runs: local, as an agent, on a server (and so REST and MCP)."""

REVIEW_OPERATIONS: tuple[type[Operation[Any]], ...] = (Quarantined, Approve, Reject, Audit)
"""What a shared cube adds: the review of quarantined writes and the audit log."""


H = TypeVar("H", bound=Callable[..., Any])


class Table(Generic[H]):
    """A runner's dispatch table: the function that runs (or sends) each operation type."""

    def __init__(self, runner: str) -> None:
        self.runner = runner
        self._by_kind: dict[type[Operation[Any]], H] = {}

    def runs(self, *kinds: type[Operation[Any]]) -> Callable[[H], H]:
        """Decorator: the function runs ``kinds``."""

        def register(handler: H) -> H:
            for kind in kinds:
                self._by_kind[kind] = handler
            return handler

        return register

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_kind

    def of(self, operation: Operation[Any]) -> H:
        """The function for ``operation`` (``TypeError`` if this runner has none)."""
        handler = self._by_kind.get(type(operation))
        if handler is None:
            raise TypeError(f"{self.runner} does not run {type(operation).__name__}")
        return handler


def needs(op: Operation[Any]) -> Right:
    """The right ``op`` needs (a purge needs ``admin``, whatever a delete needs)."""
    if isinstance(op, Delete) and op.purge:
        return "admin"
    return op.right
