"""The cube: one surface (``BaseCube``) over typed operations, run locally by ``MemCube``.

- ``operations``: every operation as a value (``Add``, ``Search``, ...) and the table of them;
- ``base``: ``BaseCube`` / ``SharedCube``, each public method and its async twin, once;
- ``local``: ``MemCube``, which runs operations on its ``Context`` (``cubemem.ops``);
- ``folder``: making, opening, importing, reindexing and composing cube folders;
- ``maintenance``: ``cube.maintenance``, what few programs call;
- ``across``: one search over several cubes, merged by score.
"""

from cubemem.cube.base import BaseCube, FiltersLike, MessageLike, Progress
from cubemem.cube.folder import default_embedder
from cubemem.cube.local import MemCube
from cubemem.cube.moves import acompose, areindex, compose, reindex
from cubemem.cube.review import SharedCube
from cubemem.ops.inputs import ScopeLike

CubeLike = BaseCube
"""What the adapters (LangChain, LlamaIndex, the tools) take: any cube — ``MemCube``,
``AgentCube`` or ``RemoteCube``."""

__all__ = [
    "BaseCube",
    "CubeLike",
    "FiltersLike",
    "MemCube",
    "MessageLike",
    "Progress",
    "ScopeLike",
    "SharedCube",
    "acompose",
    "areindex",
    "compose",
    "default_embedder",
    "reindex",
]
