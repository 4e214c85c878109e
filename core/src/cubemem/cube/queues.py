"""The queues a forget must reach: acknowledged writes not stored yet live in the cube's own
queue, in the queue of the MemoryOS root it sits in (``cubemem serve`` writes there), or in
both — whichever process queued them and whichever process forgets (docs/governance.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cubemem.model import Filters, MemoryItem
from cubemem.model.governance import Forgotten
from cubemem.ops import inputs
from cubemem.scheduler import open_queue, scrub
from cubemem.scheduler.queue import Task, TaskKind, TaskQueue
from cubemem.settings import Settings

if TYPE_CHECKING:
    from cubemem.cube import operations as op
    from cubemem.ops.context import Context
    from cubemem.scheduler import Scheduler


class MemCube(Protocol):
    """What this module reads of a ``cubemem.cube.local.MemCube`` (which imports it)."""

    _ctx: Context
    _settings: Settings
    _scheduler: Scheduler | None
    _shared_scheduler: Scheduler | None

    @property
    def id(self) -> str: ...

    @property
    def path(self) -> Path: ...


ROOT_MANIFEST = "memoryos.json"


def forget(cube: MemCube, o: op.Forget, erase: Callable[[op.Forget], Forgotten]) -> Forgotten:
    """``erase(o)`` (``ops.forget``) after every queue holding the cube's writes has lost what
    ``o`` asks for; ids that were only queued count as forgotten (they never reach a row)."""
    queued = before_forget(cube, o)
    if o.ids is None or not queued:
        return erase(o)
    stored = {i.id for i in cube._ctx.store.get(list(queued))}  # one a worker held, say
    rest = [i for i in inputs.memory_ids(o.ids) if i not in queued or i in stored]
    if rest or o.user or o.agent or o.session or o.filters is not None:
        done = erase(replace(o, ids=rest or None))
    else:
        done = Forgotten(ids=[], derived=[], uncited=[])
    return done.model_copy(update={"ids": sorted({*done.ids, *queued})})


def before_forget(cube: MemCube, o: op.Forget) -> set[str]:
    """This process's queued writes land; then every queue holding the cube's writes loses
    what the forget asks for (waiting for what a worker elsewhere is storing). Returns the
    ids the queues lost."""
    settings = cube._settings
    workers = cube._shared_scheduler or cube._scheduler
    if workers is not None and workers.running:
        workers.wait(timeout=settings.forget_drain_s)
    given = Filters.parse(o.filters).model_dump(mode="json", exclude_defaults=True)
    scope = {k: v for k, v in (("user", o.user), ("agent", o.agent), ("session", o.session)) if v}
    ids = set(inputs.memory_ids(o.ids)) if o.ids is not None else set()
    dropped: set[str] = set()
    keep = scrub.queued_writes(
        cube.id, ids, scope, given if o.filters is not None else {}, dropped=dropped
    )
    held, opened = _queues(cube)
    try:
        scrub.clear([*held, *opened], keep, settings.forget_drain_s)
    finally:
        for queue in opened:
            queue.close()
    return dropped


def queued_items(cube: MemCube, ids: list[str]) -> list[MemoryItem]:
    """The items of these ids in a background write acknowledged but not stored yet (an
    idempotency key's first call, say), from every queue that holds the cube's writes."""
    wanted, found = set(ids), list[dict[str, Any]]()

    def look(task: Task) -> Task:
        if task.kind is TaskKind.ADD and task.payload.get("cube") in (None, cube.id):
            found.extend(i for i in task.payload.get("items") or [] if i.get("id") in wanted)
        return task

    held, opened = _queues(cube)
    try:
        for queue in (*held, *opened):
            queue.scrub(look)  # changes nothing: ``look`` keeps every task
    finally:
        for queue in opened:
            queue.close()
    return [MemoryItem.model_validate(i) for i in found]


def _queues(cube: MemCube) -> tuple[list[TaskQueue], list[TaskQueue]]:
    """The queues already open here, and those opened for this forget (to be closed)."""
    settings = cube._settings
    if cube._shared_scheduler is not None:  # a MemoryOS's cube: the root's queue is its own
        return [cube._shared_scheduler.queue], []
    held: list[TaskQueue] = []
    opened: list[TaskQueue] = []
    if cube._scheduler is not None:
        held.append(cube._scheduler.queue)
    elif settings.queue_url != "sqlite" or (cube.path / "queue.sqlite3").exists():
        opened.append(_open(settings, cube.path, cube.id))
    root = cube.path.parent / ROOT_MANIFEST
    if root.is_file():
        try:
            root_id = json.loads(root.read_text(encoding="utf-8"))["id"]
        except (OSError, ValueError, KeyError, TypeError):
            root_id = None
        if root_id and (settings.queue_url != "sqlite" or (root.parent / "queue.sqlite3").exists()):
            opened.append(_open(settings, root.parent, f"os:{root_id}"))
    return held, opened


def _open(settings: Settings, folder: Path, key: str) -> TaskQueue:
    return open_queue(
        settings.queue_url,
        folder,
        key,
        sync=settings.queue_sync,
        busy_timeout_s=settings.busy_timeout_s,
    )
