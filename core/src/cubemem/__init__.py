"""cubemem: a memory operating system for LLM agents.

``MemCube`` is the unit: memories with provenance, versions and hybrid search, on disk.
``MemoryOS`` holds many cubes under one root with one scheduler.
"""

from cubemem.cube import MemCube, compose, reindex
from cubemem.embed import Embedder, SentenceTransformerEmbedder
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
from cubemem.os import MemoryOS
from cubemem.remote import RemoteCube, RemoteMemoryOS
from cubemem.settings import Settings

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
    "RemoteCube",
    "RemoteMemoryOS",
    "Scope",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "Settings",
    "Status",
    "Usage",
    "compose",
    "reindex",
]
