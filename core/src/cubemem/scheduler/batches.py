"""How a worker moves a claimed batch of adds: the embedded batch of one cube, the write in
flight, and two small helpers (a completed future, a hook list's unsubscribe)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from cubemem.model import MemoryItem
from cubemem.ops.context import Context
from cubemem.scheduler.tasks import Task
from cubemem.store.base import Embedding


@dataclass
class Batch:
    """The new memories of one cube in a claimed batch, embedded and ready to write."""

    ctx: Context
    items: list[MemoryItem]  # every item the tasks carry (follow-ups are decided on these)
    new: list[MemoryItem]  # those not stored yet
    embeddings: dict[str, Embedding]


@dataclass
class Write:
    tasks: list[Task]
    batches: list[Batch]
    future: Future[None]


def done(fn: Callable[..., None], *args: object) -> Future[None]:
    """Run ``fn`` now; its outcome as a completed future."""
    future: Future[None] = Future()
    try:
        fn(*args)
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)
    return future


def subscribe(hooks: list[Any], entry: Any) -> Callable[[], None]:
    """Add ``entry`` to ``hooks``; returns the function that takes it out again."""
    hooks.append(entry)

    def unsubscribe() -> None:
        if entry in hooks:
            hooks.remove(entry)

    return unsubscribe
