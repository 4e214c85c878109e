"""What a scheduler serves and reports: the ``Cubes`` it asks for a task's context (one cube,
or every cube of a MemoryOS), its status, and the ``add`` task a background write becomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel

from cubemem.errors import NotFoundError
from cubemem.model import MemoryItem
from cubemem.ops.context import Context
from cubemem.scheduler.tasks import DeadTask, Task, TaskKind


class Cubes(Protocol):
    """Where a scheduler finds the cubes its tasks name."""

    def context(self, cube_id: str | None) -> Context:
        """The context of cube ``cube_id`` (None: a task written before tasks named cubes,
        meaning the only cube); raises ``NotFoundError`` for a cube it does not have."""
        ...

    def contexts(self) -> list[Context]:
        """Every cube to sweep for expiry."""
        ...


class OneCube:
    """The ``Cubes`` of a cube used on its own."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def context(self, cube_id: str | None) -> Context:
        if cube_id not in (None, self._ctx.cube_id):
            raise NotFoundError(
                f"task for cube {cube_id!r} reached the queue of cube {self._ctx.cube_id!r}; "
                "use one queue per cube, or a MemoryOS for many"
            )
        return self._ctx

    def contexts(self) -> list[Context]:
        return [self._ctx]


class SchedulerStatus(BaseModel):
    queue: str
    ready: int
    in_flight: int
    done: int
    failed: list[DeadTask]
    workers: int
    items_per_s: float
    tasks_per_s: float
    extraction: dict[str, dict[str, int]] = {}
    """Per cube (by name) open here: its extractor's and decider's usage counters (calls,
    repairs, turns, prompt/completion tokens, facts, uncited facts, fallbacks)."""


def add_task(cube_id: str, items: Sequence[MemoryItem]) -> Task:
    """The durable task that stores ``items`` in cube ``cube_id``."""
    return Task(
        kind=TaskKind.ADD,
        payload={"cube": cube_id, "items": [i.model_dump(mode="json") for i in items]},
    )


def extraction_usage(contexts: Sequence[Context]) -> dict[str, dict[str, int]]:
    usage: dict[str, dict[str, int]] = {}
    for ctx in contexts:
        counters: dict[str, int] = {}
        decider = ctx.decider or getattr(ctx.extractor, "decider", None)
        for hook, prefix in ((ctx.extractor, ""), (decider, "decider_")):
            found = getattr(hook, "usage", None)
            if isinstance(found, dict):
                counters.update({f"{prefix}{k}": int(v) for k, v in found.items()})
        if counters:
            usage[ctx.name] = counters
    return usage
