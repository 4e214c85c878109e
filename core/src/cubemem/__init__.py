"""cubemem: a memory operating system for LLM agents.

``MemCube`` is the unit: memories with provenance, versions and hybrid search, on disk.
``MemoryOS`` holds many cubes under one root with one scheduler.
"""

from typing import TYPE_CHECKING, Any

from cubemem.errors import (
    AuthenticationError,
    BackendUnavailableError,
    BackpressureError,
    ConflictError,
    CubeBusyError,
    CubeCorruptError,
    CubememError,
    ExtractionError,
    FollowUpError,
    HeldLimitError,
    IncompatibleCubeError,
    IncompatibleModelError,
    InvalidArchiveError,
    InvalidBlockError,
    InvalidFilterError,
    InvalidInputError,
    NotACubeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from cubemem.cube import MemCube, compose, reindex
    from cubemem.embed import Embedder, SentenceTransformerEmbedder
    from cubemem.model import (
        Filters,
        Kind,
        MemoryInput,
        MemoryItem,
        Message,
        Provenance,
        Scope,
        SearchResult,
        Status,
        Usage,
    )
    from cubemem.model.governance import Forgotten, RedactionPolicy, RetentionRule
    from cubemem.os import MemoryOS
    from cubemem.remote import RemoteCube, RemoteMemoryOS
    from cubemem.settings import Settings

_LAZY = {
    "MemCube": "cubemem.cube",
    "compose": "cubemem.cube",
    "reindex": "cubemem.cube",
    "Embedder": "cubemem.embed",
    "SentenceTransformerEmbedder": "cubemem.embed",
    **dict.fromkeys(
        [
            "Filters",
            "Kind",
            "MemoryInput",
            "MemoryItem",
            "Message",
            "Provenance",
            "Scope",
            "SearchResult",
            "Status",
            "Usage",
        ],
        "cubemem.model",
    ),
    "Forgotten": "cubemem.model.governance",
    "RedactionPolicy": "cubemem.model.governance",
    "RetentionRule": "cubemem.model.governance",
    "MemoryOS": "cubemem.os",
    "RemoteCube": "cubemem.remote",
    "RemoteMemoryOS": "cubemem.remote",
    "Settings": "cubemem.settings",
}
"""Names imported on first use, so ``import cubemem`` (and every ``cubemem`` command that
does not need the cube machinery) stays fast; ``from cubemem import MemCube`` works as ever."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cubemem' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "BackpressureError",
    "ConflictError",
    "CubeBusyError",
    "CubeCorruptError",
    "CubememError",
    "Embedder",
    "ExtractionError",
    "Filters",
    "FollowUpError",
    "Forgotten",
    "HeldLimitError",
    "IncompatibleCubeError",
    "IncompatibleModelError",
    "InvalidArchiveError",
    "InvalidBlockError",
    "InvalidFilterError",
    "InvalidInputError",
    "Kind",
    "MemCube",
    "MemoryInput",
    "MemoryItem",
    "MemoryOS",
    "Message",
    "NotACubeError",
    "NotFoundError",
    "PermissionDeniedError",
    "Provenance",
    "RateLimitedError",
    "RedactionPolicy",
    "RemoteCube",
    "RemoteMemoryOS",
    "RetentionRule",
    "Scope",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "Settings",
    "Status",
    "Usage",
    "compose",
    "reindex",
]
