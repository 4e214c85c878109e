"""``BaseCube``: the cube surface, written once.

Each public method (its overloads, its docstring) is defined here and does one thing: build
the operation's value (``cubemem.cube.operations``) and hand it to ``run``. Its async twin is
made from it by ``twin``: the same signature, the same operation, handed to ``arun``. A cube is
a runner of operations, as httpx's clients are transports under one ``BaseClient``:

- ``MemCube`` (``cubemem.cube.local``) runs an operation on its ``Context`` (``cubemem.ops``);
- ``AgentCube`` (``cubemem.access.agents``) checks the grant, runs it as the agent, audits;
- ``RemoteCube`` (``cubemem.remote``) sends it to a ``cubemem serve`` server.

The base knows no subclass. ``arun`` runs ``run`` in a thread unless a runner has async I/O.
"""

from __future__ import annotations

import builtins
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

import cubemem.cube.operations as op
from cubemem.cube.governance import GovernanceSurface
from cubemem.cube.graph import GraphSurface
from cubemem.cube.keyed import KeyedSurface
from cubemem.cube.operations import FiltersLike, MessageLike, Progress
from cubemem.cube.runner import twin
from cubemem.model import MemoryItem, MetadataValue, SearchResult
from cubemem.ops.context import ContentLike
from cubemem.ops.inputs import ScopeLike

if TYPE_CHECKING:
    from cubemem.manifest import Manifest


class BaseCube(KeyedSurface, GraphSurface, GovernanceSurface):
    """The surface every cube has; a subclass says how an operation runs."""

    # -- what it is -------------------------------------------------------------------------
    @property
    @abstractmethod
    def manifest(self) -> Manifest:
        """The cube's identity: id, name, owner, embedder and its dimension."""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def id(self) -> str:
        return self.manifest.id

    # -- writing ----------------------------------------------------------------------------
    @overload
    def add(  # type: ignore[overload-overlap]  # a str is content and a Sequence[str]
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
    ) -> MemoryItem: ...

    @overload
    def add(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
    ) -> builtins.list[MemoryItem]: ...

    @overload
    def add(  # type: ignore[overload-overlap]
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
    ) -> str: ...

    @overload
    def add(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
    ) -> builtins.list[str]: ...

    @overload
    def add(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
    ) -> MemoryItem | builtins.list[MemoryItem] | str | builtins.list[str]: ...

    def add(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
        valid_from: datetime | str | None = None,
        valid_to: datetime | str | None = None,
    ) -> MemoryItem | builtins.list[MemoryItem] | str | builtins.list[str]:
        """Store one text (returns its item) or many (returns a list), embedded in batches.

        ``content`` may be a string, a ``MemoryInput`` (or its dict form) for per-item
        provenance, or a list of those. ``scope``, ``tags`` and ``metadata`` apply to all.
        With ``wait=False`` the write is queued durably and the new id (or ids) is returned at
        once; the scheduler stores it in the background (``wait(ids)`` to wait) and queues its
        follow-ups (extraction, consolidation) as tasks of their own. With ``wait=True`` those
        run inline; if one fails, ``FollowUpError`` is raised after the memories are stored.

        ``idempotency_key``: a retry of the same call with the same key stores nothing new and
        returns the same ids (the ids are derived from the key), even if the first attempt's
        outcome was lost (a timeout, a crash); the same key with other content is
        ``ConflictError``.

        ``valid_from``/``valid_to``: when it is true in the world (default: from when it
        occurred, else now; no end), read by ``search(as_of=...)``; UTC unless an offset.
        """
        return self._do(
            op.Add(
                content=content,
                scope=scope,
                tags=tags,
                metadata=metadata,
                wait=wait,
                idempotency_key=idempotency_key,
                valid_from=valid_from,
                valid_to=valid_to,
            )
        )

    aadd = twin(add)

    @overload
    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
    ) -> builtins.list[MemoryItem]: ...

    @overload
    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
    ) -> builtins.list[str]: ...

    @overload
    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> builtins.list[MemoryItem] | builtins.list[str]: ...

    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> builtins.list[MemoryItem] | builtins.list[str]:
        """Store conversation turns raw: one memory per turn, keeping speaker, time and id.

        Turns of one session are searched with their neighbours (see ``cubemem.retrieve``);
        ``timestamp`` is the session time, used where a message carries none. ``wait=False``
        queues them and returns their ids; ``idempotency_key`` as in ``add``. ``progress``
        is called with the number of turns stored so far (local cubes).
        """
        return self._do(
            op.AddMessages(
                messages=messages,
                session=session,
                timestamp=timestamp,
                scope=scope,
                tags=tags,
                metadata=metadata,
                progress=progress,
                wait=wait,
                idempotency_key=idempotency_key,
            )
        )

    aadd_messages = twin(add_messages)

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
        valid_from: datetime | str | None = None,
    ) -> MemoryItem:
        """Write a new version of a memory; the old one stays in ``history``.

        With ``expected_version``, a memory that moved past that version raises
        ``ConflictError`` and nothing is written; without it, a concurrent edit is re-read
        and this one applied on top (both stay in the history).

        Without ``valid_from`` this is a correction. With ``valid_from=T``, a change in the
        world: a new memory (returned, ``parent_id`` naming this one) true from ``T``; this one
        stays true before ``T`` (``superseded``, ``valid_to=T``; docs/time-and-entities.md).
        """
        return self._do(
            op.Update(
                id=id,
                content=content,
                tags=tags,
                metadata=metadata,
                scope=scope,
                expires_at=expires_at,
                expected_version=expected_version,
                valid_from=valid_from,
            )
        )

    aupdate = twin(update)

    def invalidate(
        self, id: str, *, at: datetime | str | None = None, expected_version: int | None = None
    ) -> MemoryItem:
        """End a fact's valid time at ``at`` (default: now) without a successor: a new
        version with ``valid_to``, found ``as_of`` a moment before it."""
        return self._do(op.Invalidate(id=id, at=at, expected_version=expected_version))

    ainvalidate = twin(invalidate)

    def delete(
        self, id: str, *, purge: bool = False, expected_version: int | None = None
    ) -> MemoryItem | None:
        """Mark a memory deleted (a new version; it stops appearing in search); ``purge=True``
        erases it. ``expected_version`` as in ``update``. None once done; for an agent whose
        changes are held for review, the proposal that waits (the memory is unchanged)."""
        return self._do(op.Delete(id=id, purge=purge, expected_version=expected_version))

    adelete = twin(delete)

    def restore(self, id: str, *, expected_version: int | None = None) -> MemoryItem:
        """Undo a soft delete or archive: the memory becomes active again (a new version)."""
        return self._do(op.Restore(id=id, expected_version=expected_version))

    arestore = twin(restore)

    def wait(self, ids: Sequence[str], timeout: float = 30.0) -> bool:
        """Until these queued ids (``wait=False`` writes) are stored and searchable; False if
        ``timeout`` seconds pass first."""
        return self._do(op.Wait(ids=ids, timeout=timeout))

    # no twin: ``await`` is a keyword; async code awaits ``arun(Wait(ids=...))``

    # -- reading ----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
        as_of: datetime | str | None = None,
        known_at: datetime | str | None = None,
    ) -> builtins.list[SearchResult]:
        """The ``k`` memories most relevant to ``query`` (dense + BM25, fused); with
        ``min_score``, only those whose ``relevance`` (0 to 1) reaches it. Current truth by
        default: facts neither superseded nor ended; ``include_superseded=True`` also returns
        facts a newer one contradicted or that ended (each with ``valid_to``).

        ``as_of=T``: what was true at ``T`` (facts valid then, turns that occurred by then).
        ``known_at=T``: the cube as recorded at ``T`` (each memory's version current then,
        ranked by how the memory matches now). They compose with everything; UTC unless an
        offset is given."""
        return self._do(
            op.Search(
                query=query,
                k=k,
                filters=filters,
                min_score=min_score,
                include_superseded=include_superseded,
                as_of=as_of,
                known_at=known_at,
            )
        )

    asearch = twin(search)

    def get(self, id: str) -> MemoryItem:
        """One memory by id, whatever its status."""
        return self._do(op.Get(id=id))

    aget = twin(get)

    def history(self, id: str) -> builtins.list[MemoryItem]:
        """Every version of a memory, oldest first; the last is the current one."""
        return self._do(op.History(id=id))

    ahistory = twin(history)

    def list(
        self, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[MemoryItem]:
        """A page of memories in insertion order."""
        return self._do(op.List(filters=filters, limit=limit, offset=offset))

    alist = twin(list)

    def iter(self, filters: FiltersLike = None, *, page_size: int = 100) -> Iterator[MemoryItem]:
        """Every matching memory, fetched a page at a time."""
        offset = 0
        while True:
            page = self.list(filters, limit=page_size, offset=offset)
            yield from page
            if len(page) < page_size:
                return
            offset += page_size

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.iter()

    def count(self, filters: FiltersLike = None) -> int:
        """How many memories match ``filters`` (default: the active, unexpired ones)."""
        return self._do(op.Count(filters=filters))

    acount = twin(count)

    def __len__(self) -> int:
        return self.count()

    def stats(self) -> dict[str, Any]:
        """Counts by status, the embedder, and the store's revision."""
        return self._do(op.Stats())

    astats = twin(stats)
