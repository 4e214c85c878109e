"""``CubeLike``: what the adapters (LangChain, LlamaIndex, the tools) need of a cube.

Three classes have it: ``MemCube`` (local, unchecked), ``AgentCube`` (a local cube as one
agent may use it, ``cubemem.shared``) and ``RemoteCube`` (a cube on a ``cubemem serve``
server, ``cubemem.remote``). An adapter given any of them works the same way, so an agent
moves from a local folder to a shared server by changing the object it is handed.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from cubemem.manifest import Manifest
from cubemem.model import MemoryItem, SearchResult


@runtime_checkable
class CubeLike(Protocol):
    """The cube surface shared by ``MemCube``, ``AgentCube`` and ``RemoteCube``."""

    @property
    def name(self) -> str: ...

    @property
    def manifest(self) -> Manifest: ...

    def add(
        self,
        content: Any,
        *,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: Any = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any: ...

    def add_messages(
        self,
        messages: Any,
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: Any = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Any: ...

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Any = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]: ...

    async def asearch(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Any = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> builtins.list[SearchResult]: ...

    def get(self, id: str) -> MemoryItem: ...

    def update(
        self,
        id: str,
        content: str | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: Any = None,
        scope: Any = None,
        expires_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem: ...

    def delete(
        self, id: str, *, purge: bool = False, expected_version: int | None = None
    ) -> None: ...

    def history(self, id: str) -> builtins.list[MemoryItem]: ...

    def list(
        self, filters: Any = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[MemoryItem]: ...

    def put(
        self,
        namespace: Sequence[str],
        key: str,
        content: str,
        *,
        value: dict[str, Any] | None = None,
        scope: Any = None,
        tags: Sequence[str] | None = None,
        metadata: Any = None,
        ttl: timedelta | None = None,
    ) -> MemoryItem: ...

    def lookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None: ...

    def refresh(self, ids: Sequence[str]) -> builtins.list[MemoryItem]: ...

    def namespaces(
        self, prefix: Sequence[str] = (), *, filters: Any = None
    ) -> builtins.list[tuple[str, ...]]: ...
