"""The key-value view of a cube, the part of the surface LangGraph's store is built on:
``put`` / ``lookup`` under ``(namespace, key)``, ``refresh`` of sliding lifetimes, and
``namespaces``. ``BaseCube`` inherits it."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import cubemem.cube.operations as op
from cubemem.cube.operations import FiltersLike
from cubemem.cube.runner import Runner, twin
from cubemem.model import MemoryItem, MetadataValue
from cubemem.ops.inputs import ScopeLike


class KeyedSurface(Runner):
    """Keyed memories: one live memory under each ``(namespace, key)``, its history kept."""

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
        """Store ``content`` under ``(namespace, key)``, replacing what was there as a new version.

        A key-value view of the cube (LangGraph's store is built on it): the memory's id is
        ``address_id(namespace, key)``, the old text stays in ``history``, a deleted key comes
        back to life. ``value`` keeps a structured document beside its text; ``ttl`` gives a
        sliding lifetime that ``refresh`` extends.
        """
        return self._do(
            op.Put(
                namespace=namespace,
                key=key,
                content=content,
                value=value,
                scope=scope,
                tags=tags,
                metadata=metadata,
                ttl=ttl,
            )
        )

    aput = twin(put)

    def refresh(self, ids: Sequence[str]) -> builtins.list[MemoryItem]:
        """Extend the lifetime of memories with a ``ttl`` to now + ttl; others are left alone."""
        return self._do(op.Refresh(ids=ids))

    arefresh = twin(refresh)

    def lookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        """The live memory stored under ``(namespace, key)``: None if absent, deleted or expired."""
        return self._do(op.Lookup(namespace=namespace, key=key))

    alookup = twin(lookup)

    def namespaces(
        self, prefix: Sequence[str] = (), *, filters: FiltersLike = None
    ) -> builtins.list[tuple[str, ...]]:
        """The distinct namespaces of live keyed memories under ``prefix``, sorted."""
        return self._do(op.Namespaces(prefix=prefix, filters=filters))

    anamespaces = twin(namespaces)
