"""Cubes made from other cubes: ``compose`` (several into one) and ``reindex`` (one onto
another embedder). Module functions, since neither acts on one open cube (they were
``MemCube.compose`` and ``MemCube.reindex``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cubemem.cube.folder as folder
from cubemem.cube.local import MemCube
from cubemem.cube.runner import threaded
from cubemem.embed import EmbedderLike
from cubemem.errors import InvalidInputError
from cubemem.ops import inputs
from cubemem.settings import Settings


def compose(
    cubes: Sequence[MemCube], path: str | Path, *, name: str | None = None, owner: str | None = None
) -> MemCube:
    """A new cube holding every memory of ``cubes``, each remembering its origin cube
    (was ``MemCube.compose``)."""
    cubes = inputs.as_list(cubes, "cubes")
    if not cubes or not all(isinstance(c, MemCube) for c in cubes):
        raise InvalidInputError("compose takes a non-empty list of MemCube objects")
    sources = [(c.manifest, c.maintenance.context) for c in cubes]
    settings = cubes[0].maintenance.settings
    return MemCube(folder.compose(sources, Path(path), name=name, owner=owner, settings=settings))


def reindex(
    path: str | Path, embedder: EmbedderLike, *, settings: Settings | None = None
) -> MemCube:
    """Move the cube at ``path`` to another embedder: every memory (and every version) is
    embedded again and the manifest records the new embedder. Ids, provenance, versions and
    usage stay. Built beside the cube and swapped in at the end, so an interruption leaves
    the old cube as it was. Returns the cube, open with ``embedder`` (was ``MemCube.reindex``).
    """
    target = folder.reindex(Path(path), embedder, settings=settings)
    return MemCube.open(path, embedder=target, settings=settings)


acompose = threaded(compose)
areindex = threaded(reindex)
