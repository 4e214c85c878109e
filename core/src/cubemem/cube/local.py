"""``MemCube``: a cube in a folder of this machine, running each operation on its ``Context``.

Every operation is a function of the context in ``cubemem.ops`` — the same code the
scheduler's workers run. The surface (methods, async twins, docstrings) is ``BaseCube``'s;
this module says how each operation runs here (``run``), and holds the folder's lifecycle
(``create``, ``open``, ``import_``, ``close``; the work is in ``cubemem.cube.folder``). What
few users call (consolidation, sweeps, extraction reruns) is on ``cube.maintenance``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import cubemem.cube.folder as folder
import cubemem.cube.operations as op
import cubemem.cube.queues as queues
import cubemem.ops.redaction as redaction
from cubemem.cube.base import BaseCube
from cubemem.cube.maintenance import Maintenance
from cubemem.cube.runner import threaded
from cubemem.embed import Embedder, EmbedderLike
from cubemem.manifest import Manifest
from cubemem.model import Filters, MemoryItem, Status
from cubemem.ops import create, followup, graph, inputs, keyed, read, timeline, transfer, write
from cubemem.ops import forget as forgetting
from cubemem.scheduler import OneCube, Scheduler, add_task, open_queue
from cubemem.settings import Settings

R = TypeVar("R")
Handler = Callable[["MemCube", Any], Any]
HANDLERS: op.Table[Handler] = op.Table("a local cube")


class MemCube(BaseCube):
    """A folder of memories with provenance, versions and hybrid search: ``MemCube.create(path)``
    makes one, ``MemCube.open(path)`` reopens it; every method has an async twin (``a...``)."""

    def __init__(self, parts: folder.Parts, *, scheduler: Scheduler | None = None) -> None:
        self._path = parts.path
        self._manifest = parts.manifest
        self._settings = parts.settings
        self._ctx = parts.context()
        self._shared_scheduler = scheduler
        self._scheduler: Scheduler | None = None
        self._scheduler_lock = threading.Lock()
        self._maintenance = Maintenance(self._ctx, self._settings)

    # -- the folder ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
        scheduler: Scheduler | None = None,
    ) -> MemCube:
        """Make a new, empty cube in ``path`` (which must not exist or be empty).

        ``embedder``: the default sentence-transformers model, or anything ``as_embedder``
        takes (a LangChain ``Embeddings``, a LlamaIndex ``BaseEmbedding``, an
        ``OpenAIEmbedder``, a function); its name and dimension are recorded in the manifest.
        ``scheduler``: a scheduler shared with other cubes (``MemoryOS`` passes its own).
        """
        parts = folder.create(
            Path(path), name=name, owner=owner, embedder=embedder, settings=settings
        )
        return cls(parts, scheduler=scheduler)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
        scheduler: Scheduler | None = None,
        create: bool = False,
    ) -> MemCube:
        """Open an existing cube, repairing its index if a crash left it behind the rows.

        ``create=True`` makes the cube first when ``path`` holds none (the first run of a
        program that reopens its memory on every later run). ``embedder``: the one the cube
        was built with (default: from the manifest's name — the sentence-transformers model,
        or ``openai:<model>`` from the environment); another is ``IncompatibleCubeError``. A
        cube built with a custom embedder opened without it can be read, not searched."""
        path = Path(path)
        if create and not folder.is_cube(path):
            return cls.create(path, embedder=embedder, settings=settings, scheduler=scheduler)
        cube = cls(folder.open_(path, embedder=embedder, settings=settings), scheduler=scheduler)
        cube.maintenance.last_repair = cube._ctx.store.reconcile(cube._ctx.embed)
        forgetting.resume(cube._ctx)  # a forget a killed process left half done
        settings = cube._settings
        if (
            scheduler is None
            and settings.queue_url == "sqlite"
            and (path / "queue.sqlite3").exists()
        ):
            stats = cube.scheduler.queue.stats()
            if stats.ready or stats.in_flight:  # work a crash left behind
                cube.scheduler.start()
        return cube

    @classmethod
    def import_(
        cls,
        archive_path: str | Path,
        path: str | Path,
        *,
        embedder: EmbedderLike | None = None,
        settings: Settings | None = None,
    ) -> MemCube:
        """Recreate an exported cube in ``path``: same id, memories, versions and usage.

        All or nothing: the archive is read within ``Settings.max_archive_bytes`` and every
        record checked as ``add`` checks it before anything is written; the cube is built in a
        temporary folder beside ``path`` and renamed into place only when complete. Any fault
        is ``InvalidArchiveError`` and leaves nothing behind. The archive never chooses a model:
        the embedder is the one passed, or the configured one (``Settings.embedder``), and an
        archive built with another is ``IncompatibleCubeError``.
        """
        path = Path(path)
        chosen = folder.import_(Path(archive_path), path, embedder=embedder, settings=settings)
        return cls.open(path, embedder=chosen, settings=settings)

    acreate = classmethod(threaded(create.__func__))  # type: ignore[attr-defined]
    aopen = classmethod(threaded(open.__func__))  # type: ignore[attr-defined]
    aimport_ = classmethod(threaded(import_.__func__))  # type: ignore[attr-defined]

    def export(self, archive_path: str | Path) -> Path:
        """Write the whole cube (every memory, every version) into one archive file."""
        return transfer.export(self._ctx, self._manifest, Path(archive_path))

    aexport = threaded(export)

    def close(self) -> None:
        """Stop the workers (queued tasks stay durable) and release the store."""
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler.queue.close()
            self._scheduler = None
        self._ctx.retriever.close()  # its index file, when well behind the rows
        self._ctx.store.close()

    aclose = threaded(close)

    def __enter__(self) -> MemCube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what it is ---------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def path(self) -> Path:
        return self._path

    @property
    def embedder(self) -> Embedder:
        return self._ctx.embedder

    @property
    def maintenance(self) -> Maintenance:
        """What few programs call: consolidation, lifecycle sweeps, extraction reruns, kind
        moves, working memory, the store, the context, the pipeline's hooks."""
        return self._maintenance

    @property
    def scheduler(self) -> Scheduler:
        """The cube's scheduler (its queue is ``Settings.queue_url``), or the one it shares."""
        if self._shared_scheduler is not None:
            return self._shared_scheduler
        with self._scheduler_lock:
            if self._scheduler is None:
                queue = open_queue(
                    self._settings.queue_url,
                    self._path,
                    self.id,
                    sync=self._settings.queue_sync,
                    busy_timeout_s=self._settings.busy_timeout_s,
                )
                self._scheduler = Scheduler(OneCube(self._ctx), queue, self._settings)
            return self._scheduler

    def __repr__(self) -> str:
        return f"MemCube(name={self.name!r}, path={str(self._path)!r})"

    def __getattr__(self, name: str) -> Any:
        if name in _MOVED or name in _MODULE:
            raise AttributeError(_moved(name))
        raise AttributeError(f"MemCube has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # an assignment to a name that moved would otherwise be kept and never read
        if name in _MOVED or name in _MODULE:
            raise AttributeError(_moved(name))
        super().__setattr__(name, value)

    # -- running --------------------------------------------------------------------------
    def run(self, operation: op.Operation[R]) -> R:
        """Run one operation on this cube's context (the names it is given written as a
        redaction policy stores them; a forget matches both forms, ``ops.forget``)."""
        if not isinstance(operation, op.Forget):
            operation = redaction.identified(self._ctx, operation)
        return cast(R, HANDLERS.of(operation)(self, operation))

    def _enqueue(self, items: Sequence[MemoryItem]) -> list[str]:
        self.scheduler.start().submit([add_task(self.id, items)])
        return [i.id for i in items]

    def _store_now(self, items: Sequence[MemoryItem], progress: Any = None) -> None:
        stored = write.insert(self._ctx, items, progress=progress)
        followup.run_inline(self._ctx, stored)

    def _write(
        self, items: list[MemoryItem], single: bool, wait: bool, key: str | None, progress: Any
    ) -> Any:
        if key is not None:
            items, done = create.idempotent(
                self._ctx, items, key, partial(queues.queued_items, self)
            )
            if done:
                return _shaped(items, single, wait)
        create.room_for_held(self._ctx, items)
        if not wait:
            self._enqueue(items)
        else:
            self._store_now(items, progress)
        return _shaped(items, single, wait)


_MOVED = {name for name in Maintenance.__dict__ if not name.startswith("_")}
_MODULE = {"compose", "reindex", "acompose", "areindex"}


def _moved(name: str) -> str:
    if name in _MODULE:
        return f"MemCube.{name} moved to cubemem.cube.{name}(...) (CHANGELOG.md lists the moves)"
    return (
        f"MemCube.{name} moved to cube.maintenance.{name} (CHANGELOG.md lists the moves); "
        f"use cube.maintenance.{name}"
    )


def _shaped(items: list[MemoryItem], single: bool, wait: bool) -> Any:
    out: list[Any] = items if wait else [i.id for i in items]
    return out[0] if single else out


@HANDLERS.runs(op.Add)
def _add(cube: MemCube, o: op.Add) -> Any:
    single = o.single
    contents = [o.content] if single else inputs.as_list(o.content, "content")
    items = create.new_items(
        cube._ctx,
        contents,
        scope=o.scope,
        tags=o.tags,
        metadata=o.metadata,
        valid_from=o.valid_from,
        valid_to=o.valid_to,
    )
    return cube._write(items, single, o.wait, o.idempotency_key, None)


@HANDLERS.runs(op.AddMessages)
def _add_messages(cube: MemCube, o: op.AddMessages) -> Any:
    items = create.new_turns(
        cube._ctx,
        o.messages,
        session=o.session,
        timestamp=o.timestamp,
        scope=o.scope,
        tags=o.tags,
        metadata=o.metadata,
    )
    known = {i.id: i for i in cube._ctx.store.get([i.id for i in items])}  # by message id
    if known and o.idempotency_key is None:  # a message stored before is not stored again
        fresh = [i for i in items if i.id not in known]
        if fresh:
            cube._write(fresh, False, o.wait, None, None)
        if o.progress is not None:
            o.progress(len(items))
        return [known.get(i.id, i) for i in items] if o.wait else [i.id for i in items]
    return cube._write(items, False, o.wait, o.idempotency_key, o.progress)


@HANDLERS.runs(op.Update)
def _update(cube: MemCube, o: op.Update) -> MemoryItem:
    if o.valid_from is not None:  # a change in the world, not a correction
        return timeline.change_of_fact(cube._ctx, **o.arguments())
    return write.update(
        cube._ctx,
        o.id,
        o.content,
        tags=o.tags,
        metadata=o.metadata,
        scope=o.scope,
        expires_at=o.expires_at,
        expected_version=o.expected_version,
    )


@HANDLERS.runs(op.Invalidate)
def _invalidate(cube: MemCube, o: op.Invalidate) -> MemoryItem:
    return timeline.invalidate(cube._ctx, o.id, o.at, o.expected_version)


@HANDLERS.runs(op.Delete)
def _delete(cube: MemCube, o: op.Delete) -> MemoryItem | None:
    if o.purge:
        write.purge(cube._ctx, o.id, expected_version=o.expected_version)
        return None
    done = write.set_status(cube._ctx, o.id, Status.DELETED, expected_version=o.expected_version)
    return done if done.id != o.id else None  # another id: the change held for review


@HANDLERS.runs(op.Restore)
def _restore(cube: MemCube, o: op.Restore) -> MemoryItem:
    return write.set_status(cube._ctx, o.id, Status.ACTIVE, expected_version=o.expected_version)


@HANDLERS.runs(op.Put)
def _put(cube: MemCube, o: op.Put) -> MemoryItem:
    return keyed.put(
        cube._ctx,
        o.namespace,
        o.key,
        o.content,
        value=o.value,
        scope=o.scope,
        tags=o.tags,
        metadata=o.metadata,
        ttl=o.ttl,
    )


@HANDLERS.runs(op.Refresh)
def _refresh(cube: MemCube, o: op.Refresh) -> list[MemoryItem]:
    return keyed.refresh(cube._ctx, o.ids)


@HANDLERS.runs(op.Wait)
def _wait(cube: MemCube, o: op.Wait) -> bool:
    return cube.scheduler.wait(inputs.memory_ids(o.ids), o.timeout, cube=cube.id)


@HANDLERS.runs(op.Get)
def _get(cube: MemCube, o: op.Get) -> MemoryItem:
    return write.get(cube._ctx, o.id)


@HANDLERS.runs(op.History)
def _history(cube: MemCube, o: op.History) -> list[MemoryItem]:
    return cube._ctx.store.versions(write.get(cube._ctx, o.id).id)


@HANDLERS.runs(op.List)
def _list(cube: MemCube, o: op.List) -> list[MemoryItem]:
    return read.page(cube._ctx, o.filters, limit=o.limit, offset=o.offset)


@HANDLERS.runs(op.Count)
def _count(cube: MemCube, o: op.Count) -> int:
    return read.count(cube._ctx, o.filters)


@HANDLERS.runs(op.Lookup)
def _lookup(cube: MemCube, o: op.Lookup) -> MemoryItem | None:
    return keyed.lookup(cube._ctx, o.namespace, o.key)


@HANDLERS.runs(op.Namespaces)
def _namespaces(cube: MemCube, o: op.Namespaces) -> list[tuple[str, ...]]:
    return keyed.namespaces(cube._ctx, o.prefix, filters=o.filters)


@HANDLERS.runs(op.Search, op.Forget, op.Entities, op.Relations, op.Neighbourhood)
@HANDLERS.runs(op.MergeEntities, op.SplitEntity)
def _by_name(cube: MemCube, o: Any) -> Any:
    if isinstance(o, op.Forget):  # queued writes, here or elsewhere, go too
        return queues.forget(cube, o, lambda rest: forgetting.forget(cube._ctx, **rest.arguments()))
    module = read if isinstance(o, op.Search) else graph  # the op's function
    return getattr(module, o.method)(cube._ctx, **o.arguments())


@HANDLERS.runs(op.Stats)
def _stats(cube: MemCube, o: op.Stats) -> dict[str, Any]:
    ctx = cube._ctx
    now = ctx.clock()
    by_status = {
        s.value: ctx.store.count(Filters(status=[s], include_expired=True), now=now) for s in Status
    }
    return {
        "cube": cube.name,
        "id": cube.id,
        "path": str(cube.path),
        "memories": sum(by_status.values()),
        "by_status": by_status,
        "expired": by_status["active"] - read.count(ctx, None),
        "embedder": cube.manifest.embedder,
        "dimension": cube.manifest.dimension,
        "format_version": cube.manifest.format_version,
        "revision": ctx.store.revision(),
    }
