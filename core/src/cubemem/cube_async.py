"""The async twins of ``MemCube``: same names with an ``a`` in front, same parameters.

Each runs its sync twin in a worker thread (``asyncio.to_thread``), so the event loop never
blocks on the model, SQLite or the index; the logic exists once, in the sync method. The
signatures are spelled out (no ``**kwargs``) and ``tests/core/test_async_parity.py`` fails on
any drift between the two surfaces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from cubemem.model import Kind, MemoryItem, MetadataValue, SearchResult

if TYPE_CHECKING:
    from cubemem.cube import FiltersLike, MemCube, MessageLike, Progress, ScopeLike
    from cubemem.embed import EmbedderLike
    from cubemem.ops import consolidate as consolidation
    from cubemem.ops import lifecycle
    from cubemem.ops.context import ContentLike
    from cubemem.scheduler import Scheduler
    from cubemem.settings import Settings


def _cube(obj: object) -> MemCube:
    return cast("MemCube", obj)


def _cube_class(obj: object) -> type[MemCube]:
    return cast("type[MemCube]", obj)


class AsyncCube:
    """Mixed into ``MemCube``: the async surface."""

    @classmethod
    async def acreate(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
        scheduler: Scheduler | None = None,
    ) -> MemCube:
        """Async twin of ``create``."""
        return await asyncio.to_thread(
            _cube_class(cls).create,
            path,
            name=name,
            owner=owner,
            embedder=embedder,
            settings=settings,
            scheduler=scheduler,
        )

    @classmethod
    async def aopen(
        cls,
        path: str | Path,
        *,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
        scheduler: Scheduler | None = None,
        create: bool = False,
    ) -> MemCube:
        """Async twin of ``open``."""
        return await asyncio.to_thread(
            _cube_class(cls).open,
            path,
            embedder=embedder,
            settings=settings,
            scheduler=scheduler,
            create=create,
        )

    async def aclose(self) -> None:
        """Async twin of ``close``."""
        await asyncio.to_thread(_cube(self).close)

    @overload
    async def aadd(  # type: ignore[overload-overlap]  # a str is content and a Sequence[str]
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
    ) -> MemoryItem: ...

    @overload
    async def aadd(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
    ) -> list[MemoryItem]: ...

    @overload
    async def aadd(  # type: ignore[overload-overlap]
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
    ) -> str: ...

    @overload
    async def aadd(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
    ) -> list[str]: ...

    @overload
    async def aadd(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> MemoryItem | list[MemoryItem] | str | list[str]: ...

    async def aadd(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> MemoryItem | list[MemoryItem] | str | list[str]:
        """Async twin of ``add``."""
        return await asyncio.to_thread(
            _cube(self).add,
            content,
            scope=scope,
            tags=tags,
            metadata=metadata,
            wait=wait,
            idempotency_key=idempotency_key,
        )

    @overload
    async def aadd_messages(
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
    ) -> list[MemoryItem]: ...

    @overload
    async def aadd_messages(
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
    ) -> list[str]: ...

    @overload
    async def aadd_messages(
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
    ) -> list[MemoryItem] | list[str]: ...

    async def aadd_messages(
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
    ) -> list[MemoryItem] | list[str]:
        """Async twin of ``add_messages``."""
        return await asyncio.to_thread(
            _cube(self).add_messages,
            messages,
            session=session,
            timestamp=timestamp,
            scope=scope,
            tags=tags,
            metadata=metadata,
            progress=progress,
            wait=wait,
            idempotency_key=idempotency_key,
        )

    async def aupdate(
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
        """Async twin of ``update``."""
        return await asyncio.to_thread(
            _cube(self).update,
            id,
            content,
            tags=tags,
            metadata=metadata,
            scope=scope,
            expires_at=expires_at,
            expected_version=expected_version,
        )

    async def adelete(
        self, id: str, *, purge: bool = False, expected_version: int | None = None
    ) -> None:
        """Async twin of ``delete``."""
        await asyncio.to_thread(
            _cube(self).delete, id, purge=purge, expected_version=expected_version
        )

    async def aset_kind(
        self,
        id: str,
        kind: Kind | str,
        *,
        note: str | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        """Async twin of ``set_kind``."""
        return await asyncio.to_thread(
            _cube(self).set_kind, id, kind, note=note, expected_version=expected_version
        )

    async def arestore(self, id: str, *, expected_version: int | None = None) -> MemoryItem:
        """Async twin of ``restore``."""
        return await asyncio.to_thread(_cube(self).restore, id, expected_version=expected_version)

    async def aextract(self, ids: Sequence[str]) -> list[MemoryItem]:
        """Async twin of ``extract``."""
        return await asyncio.to_thread(_cube(self).extract, ids)

    async def aconsolidate(self, ids: Sequence[str] | None = None) -> list[consolidation.Merge]:
        """Async twin of ``consolidate``."""
        return await asyncio.to_thread(_cube(self).consolidate, ids)

    async def aundo_merge(self, merged_id: str) -> tuple[MemoryItem, MemoryItem]:
        """Async twin of ``undo_merge``."""
        return await asyncio.to_thread(_cube(self).undo_merge, merged_id)

    async def alifecycle(
        self, *, now: datetime | None = None, dry_run: bool = False
    ) -> lifecycle.LifecycleReport:
        """Async twin of ``lifecycle``."""
        return await asyncio.to_thread(_cube(self).lifecycle, now=now, dry_run=dry_run)

    async def aworking_memory(
        self, agent: str | None = None, session: str | None = None
    ) -> list[MemoryItem]:
        """Async twin of ``working_memory``."""
        return await asyncio.to_thread(_cube(self).working_memory, agent, session)

    async def aput(
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
        """Async twin of ``put``."""
        return await asyncio.to_thread(
            _cube(self).put,
            namespace,
            key,
            content,
            value=value,
            scope=scope,
            tags=tags,
            metadata=metadata,
            ttl=ttl,
        )

    async def alookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        """Async twin of ``lookup``."""
        return await asyncio.to_thread(_cube(self).lookup, namespace, key)

    async def arefresh(self, ids: Sequence[str]) -> list[MemoryItem]:
        """Async twin of ``refresh``."""
        return await asyncio.to_thread(_cube(self).refresh, ids)

    async def anamespaces(
        self, prefix: Sequence[str] = (), *, filters: FiltersLike = None
    ) -> list[tuple[str, ...]]:
        """Async twin of ``namespaces``."""
        return await asyncio.to_thread(_cube(self).namespaces, prefix, filters=filters)

    async def asearch(
        self,
        query: str,
        *,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> list[SearchResult]:
        """Async twin of ``search``."""
        return await asyncio.to_thread(
            _cube(self).search,
            query,
            k=k,
            filters=filters,
            min_score=min_score,
            include_superseded=include_superseded,
        )

    async def aget(self, id: str) -> MemoryItem:
        """Async twin of ``get``."""
        return await asyncio.to_thread(_cube(self).get, id)

    async def ahistory(self, id: str) -> list[MemoryItem]:
        """Async twin of ``history``."""
        return await asyncio.to_thread(_cube(self).history, id)

    async def alist(
        self, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
    ) -> list[MemoryItem]:
        """Async twin of ``list``."""
        return await asyncio.to_thread(_cube(self).list, filters, limit=limit, offset=offset)

    async def acount(self, filters: FiltersLike = None) -> int:
        """Async twin of ``count``."""
        return await asyncio.to_thread(_cube(self).count, filters)

    async def astats(self) -> dict[str, Any]:
        """Async twin of ``stats``."""
        return await asyncio.to_thread(_cube(self).stats)

    async def aexport(self, archive_path: str | Path) -> Path:
        """Async twin of ``export``."""
        return await asyncio.to_thread(_cube(self).export, archive_path)

    @classmethod
    async def aimport_(
        cls,
        archive_path: str | Path,
        path: str | Path,
        *,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
    ) -> MemCube:
        """Async twin of ``import_``."""
        return await asyncio.to_thread(
            _cube_class(cls).import_, archive_path, path, embedder=embedder, settings=settings
        )

    @classmethod
    async def areindex(
        cls,
        path: str | Path,
        embedder: EmbedderLike,
        *,
        settings: Settings | None = None,
    ) -> MemCube:
        """Async twin of ``reindex``."""
        return await asyncio.to_thread(_cube_class(cls).reindex, path, embedder, settings=settings)

    @classmethod
    async def acompose(
        cls,
        cubes: Sequence[MemCube],
        path: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
    ) -> MemCube:
        """Async twin of ``compose``."""
        return await asyncio.to_thread(
            _cube_class(cls).compose, cubes, path, name=name, owner=owner
        )
