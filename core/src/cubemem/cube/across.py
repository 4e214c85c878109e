"""Many cubes as one: ``CubeSet`` is the surface of ``MemoryOS``, ``AgentOS`` and
``RemoteMemoryOS`` — open, list, and one search across cubes merged by score, written once."""

from __future__ import annotations

import builtins
from abc import abstractmethod
from collections.abc import Iterable
from datetime import datetime

import cubemem.cube.operations as op
from cubemem.cube.base import BaseCube, FiltersLike
from cubemem.cube.runner import R, Runner, twin
from cubemem.model import SearchResult
from cubemem.ops import inputs


class CubeSet(Runner):
    """Cubes under one name space; ``search`` over a chosen set of them."""

    @abstractmethod
    def list_cubes(self) -> builtins.list[str]:
        """The names of the cubes (that the caller may use)."""

    @abstractmethod
    def open_cube(self, name: str) -> BaseCube:
        """The cube ``name``."""

    def search(
        self,
        query: str,
        *,
        cubes: builtins.list[str] | None = None,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
        as_of: datetime | str | None = None,
        known_at: datetime | str | None = None,
    ) -> builtins.list[SearchResult]:
        """The ``k`` best memories of ``cubes`` (default: all), merged by score; each result
        names its cube in ``cube_name``. Scores are the cubes' fused scores, which share one
        scale (cosines and BM25 shares under the same weights); ``min_score`` and
        ``include_superseded``, ``as_of`` and ``known_at`` work as in ``MemCube.search``."""
        inputs.positive_int(k, "k")
        return self._do(
            op.SearchCubes(
                search=op.Search(
                    query=query,
                    k=k,
                    filters=filters,
                    min_score=min_score,
                    include_superseded=include_superseded,
                    as_of=as_of,
                    known_at=known_at,
                ),
                cubes=None if cubes is None else inputs.as_list(cubes, "cubes"),
            )
        )

    asearch = twin(search)

    def run(self, operation: op.Operation[R]) -> R:
        """A cube set runs one operation itself: ``SearchCubes``, over its own cubes."""
        if not isinstance(operation, op.SearchCubes):
            raise TypeError(f"{type(self).__name__} runs SearchCubes, not {operation!r}")
        names = self.list_cubes() if operation.cubes is None else operation.cubes
        found = ((name, self.open_cube(name)) for name in dict.fromkeys(names))
        return merged(found, operation.search)  # type: ignore[return-value]


def merged(cubes: Iterable[tuple[str, BaseCube]], search: op.Search) -> list[SearchResult]:
    """``search`` run on each cube, the results merged by score, the best ``k`` kept."""
    out: list[SearchResult] = []
    for name, cube in cubes:
        out.extend(hit.model_copy(update={"cube_name": name}) for hit in cube.run(search))
    out.sort(key=lambda r: r.score, reverse=True)
    return out[: search.k]
