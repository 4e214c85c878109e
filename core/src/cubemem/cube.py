"""MemCube: the unit of memory — a thin facade over the write layer (``cubemem.ops``).

The cube owns its folder, its manifest and its store; every operation is a function of its
``Context`` in ``cubemem.ops``, the same code the scheduler's workers run. Async twins
(``aadd``, ``asearch``, ...) live in ``cubemem.cube_async``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, overload

from cubemem import archive
from cubemem.cube_async import AsyncCube
from cubemem.embed import Embedder, EmbedderLike, as_embedder, embedder_for
from cubemem.errors import CubeCorruptError, IncompatibleCubeError, InvalidInputError
from cubemem.manifest import MANIFEST_NAME, Manifest, read_manifest, write_manifest
from cubemem.model import (
    Filters,
    Kind,
    MemoryInput,
    MemoryItem,
    Message,
    MetadataValue,
    SearchResult,
    Status,
)
from cubemem.ops import consolidate as consolidation
from cubemem.ops import decide as decisions
from cubemem.ops import followup, inputs, keyed, lifecycle, read, transfer, write
from cubemem.ops.context import ContentLike, Context, Extractor
from cubemem.ops.working import Subscriber, WorkingMemory
from cubemem.retrieve import RetrievalConfig
from cubemem.scheduler import OneCube, Scheduler, add_task, open_queue
from cubemem.settings import Settings
from cubemem.store import MemoryStore, engine_of, open_store
from cubemem.store.base import Repair

log = logging.getLogger(__name__)

ScopeLike = inputs.ScopeLike
FiltersLike = Filters | dict[str, Any] | None
MessageLike = Message | dict[str, Any]
Progress = Callable[[int], None]


class MemCube(AsyncCube):
    """A folder of memories with provenance, versions and hybrid search.

    Make one with ``MemCube.create(path)``, reopen it with ``MemCube.open(path)``.
    Every method has an async twin prefixed with ``a`` that runs it off the event loop.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        store: MemoryStore,
        embedder: Embedder,
        settings: Settings,
        *,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._path = path
        self._manifest = manifest
        self._settings = settings
        self._ctx = Context.build(
            cube_id=manifest.id,
            name=manifest.name,
            dimension=manifest.dimension,
            store=store,
            embedder=embedder,
            settings=settings,
        )
        self.last_repair: Repair = Repair()
        self._shared_scheduler = scheduler
        self._scheduler: Scheduler | None = None
        self._scheduler_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
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
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InvalidInputError(
                f"{path} already exists and is not an empty folder; open an existing cube with "
                "MemCube.open, or choose a new path"
            )
        settings = settings or Settings()
        embedder = as_embedder(embedder) if embedder is not None else default_embedder(settings)
        manifest = Manifest(
            name=name or path.name,
            owner=owner,
            embedder=embedder.name,
            dimension=embedder.dimension,
            store=engine_of(settings.store_url),
        )
        path.mkdir(parents=True, exist_ok=True)
        store = _store(settings, path, manifest, embedder)
        write_manifest(path, manifest)
        log.info("created cube %s at %s", manifest.name, path)
        return cls(path, manifest, store, embedder, settings, scheduler=scheduler)

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
        was built with (default: rebuilt from the manifest's name — the sentence-transformers
        model, or ``openai:<model>`` from the environment); another is refused with
        ``IncompatibleCubeError``. A cube built with a LangChain/LlamaIndex/custom embedder
        opened without it can be read, listed and exported, but not searched or added to.
        """
        path = Path(path)
        if create and not (path / MANIFEST_NAME).exists():
            return cls.create(path, embedder=embedder, settings=settings, scheduler=scheduler)
        manifest = read_manifest(path)
        settings = settings or Settings()
        if manifest.store != engine_of(settings.store_url):
            raise IncompatibleCubeError(
                f"cube {manifest.name!r} keeps its memories in {manifest.store}, but the "
                f"configured store is {engine_of(settings.store_url)}; set CUBEMEM_STORE_URL "
                "(Settings.store_url) to the cube's database"
            )
        if manifest.store == "sqlite" and not (path / "memories.sqlite3").is_file():
            raise CubeCorruptError(
                f"{path / 'memories.sqlite3'} is missing: the cube's rows are gone. Nothing was "
                "changed (the vector index was left as it is); restore the file from a backup "
                "or an export (`cubemem import`)"
            )
        embedder = (
            as_embedder(embedder)
            if embedder is not None
            else default_embedder(settings, manifest.embedder, manifest.dimension)
        )
        manifest.check_embedder(embedder.name, embedder.dimension)
        store = _store(settings, path, manifest, embedder)
        cube = cls(path, manifest, store, embedder, settings, scheduler=scheduler)
        cube.last_repair = store.reconcile(cube._ctx.embed)
        if (
            scheduler is None
            and settings.queue_url == "sqlite"
            and (path / "queue.sqlite3").exists()
        ):
            stats = cube.scheduler.queue.stats()
            if stats.ready or stats.in_flight:  # work a crash left behind
                cube.scheduler.start()
        return cube

    def close(self) -> None:
        """Stop the workers (queued tasks stay durable) and release the store."""
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler.queue.close()
            self._scheduler = None
        self._ctx.store.close()

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

    def __enter__(self) -> MemCube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def id(self) -> str:
        return self._manifest.id

    @property
    def name(self) -> str:
        return self._manifest.name

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def embedder(self) -> Embedder:
        return self._ctx.embedder

    @property
    def store(self) -> MemoryStore:
        """The storage engine (rows, versions, vectors)."""
        return self._ctx.store

    @property
    def context(self) -> Context:
        """What the operations in ``cubemem.ops`` and the scheduler's workers act on."""
        return self._ctx

    @property
    def working(self) -> WorkingMemory:
        """The per agent/session hot sets (``cubemem.ops.working.WorkingMemory``)."""
        return self._ctx.working

    @property
    def retrieval(self) -> RetrievalConfig:
        """The fusion weights and pools search uses (defaults measured on LoCoMo)."""
        return self._ctx.retriever.config

    @retrieval.setter
    def retrieval(self, config: RetrievalConfig) -> None:
        if not isinstance(config, RetrievalConfig):
            raise InvalidInputError("retrieval must be a cubemem.retrieve.RetrievalConfig")
        self._ctx.retriever.config = config

    @property
    def extractor(self) -> Extractor | None:
        """Turns raw conversation turns into facts after each write (see ``extract``)."""
        return self._ctx.extractor

    @extractor.setter
    def extractor(self, extractor: Extractor | None) -> None:
        if extractor is not None and not callable(extractor):
            raise InvalidInputError("extractor must be a callable: turns -> facts")
        self._ctx.extractor = extractor

    @property
    def decider(self) -> decisions.Decider | None:
        """Decides where an extracted fact goes (ADD/UPDATE/DUPLICATE/CONTRADICT); None: the
        deterministic similarity rule (``cubemem.ops.decide``)."""
        return self._ctx.decider

    @decider.setter
    def decider(self, decider: decisions.Decider | None) -> None:
        self._ctx.decider = decider

    @property
    def merge_policy(self) -> consolidation.MergePolicy | None:
        """Decides what text a consolidation keeps (default: the newer text)."""
        return self._ctx.merge_policy

    @merge_policy.setter
    def merge_policy(self, policy: consolidation.MergePolicy | None) -> None:
        self._ctx.merge_policy = policy

    def __repr__(self) -> str:
        return f"MemCube(name={self.name!r}, path={str(self._path)!r})"

    # -- writing --------------------------------------------------------------------------
    @overload
    def add(  # type: ignore[overload-overlap]  # a str is content and a Sequence[str]
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
    ) -> MemoryItem: ...

    @overload
    def add(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
    ) -> list[MemoryItem]: ...

    @overload
    def add(  # type: ignore[overload-overlap]
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
    ) -> str: ...

    @overload
    def add(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
    ) -> list[str]: ...

    @overload
    def add(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> MemoryItem | list[MemoryItem] | str | list[str]: ...

    def add(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> MemoryItem | list[MemoryItem] | str | list[str]:
        """Store one text (returns its item) or many (returns a list), embedded in batches.

        ``content`` may be a string, a ``MemoryInput`` (or its dict form) for per-item
        provenance, or a list of those. ``scope``, ``tags`` and ``metadata`` apply to all.
        With ``wait=False`` the write is queued durably and the new id (or ids) is returned at
        once; the scheduler stores it in the background (``scheduler.wait(ids)`` to wait) and
        queues its follow-ups (extraction, consolidation) as tasks of their own. With
        ``wait=True`` those run inline; if one fails, ``FollowUpError`` is raised after the
        memories are stored.

        ``idempotency_key``: a retry of the same call with the same key stores nothing new and
        returns the same ids (the ids are derived from the key), even if the first attempt's
        outcome was lost (a timeout, a crash); the same key with other content is
        ``ConflictError``.
        """
        single = isinstance(content, str | MemoryInput | dict)
        contents = [content] if single else inputs.as_list(content, "content")
        items = write.new_items(self._ctx, contents, scope=scope, tags=tags, metadata=metadata)
        if idempotency_key is not None:
            items, done = write.idempotent(self._ctx, items, idempotency_key)
            if done:
                if not wait:
                    return items[0].id if single else [i.id for i in items]
                return items[0] if single else items
        if not wait:
            ids = self._enqueue(items)
            return ids[0] if single else ids
        self._store_now(items)
        return items[0] if single else items

    @overload
    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: Literal[True] = True,
        idempotency_key: str | None = None,
    ) -> list[MemoryItem]: ...

    @overload
    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: Literal[False],
        idempotency_key: str | None = None,
    ) -> list[str]: ...

    @overload
    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> list[MemoryItem] | list[str]: ...

    def add_messages(
        self,
        messages: Sequence[MessageLike],
        *,
        session: str | None = None,
        timestamp: datetime | str | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        progress: Progress | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> list[MemoryItem] | list[str]:
        """Store conversation turns raw: one memory per turn, keeping speaker, time and id.

        Turns of one session are searched with their neighbours (see ``cubemem.retrieve``);
        ``timestamp`` is the session time, used where a message carries none. ``wait=False``
        queues them and returns their ids; ``idempotency_key`` as in ``add``.
        """
        items = write.new_turns(
            self._ctx,
            messages,
            session=session,
            timestamp=timestamp,
            scope=scope,
            tags=tags,
            metadata=metadata,
        )
        if idempotency_key is not None:
            items, done = write.idempotent(self._ctx, items, idempotency_key)
            if done:
                return [i.id for i in items] if not wait else items
        if not wait:
            return self._enqueue(items)
        self._store_now(items, progress=progress)
        return items

    def update(
        self,
        id: str,
        content: str | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        scope: ScopeLike = None,
        expires_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        """Write a new version of a memory; the old one stays in ``history``.

        With ``expected_version``, a memory that moved past that version raises
        ``ConflictError`` and nothing is written; without it, a concurrent edit is re-read
        and this one applied on top (both stay in the history).
        """
        return write.update(
            self._ctx,
            id,
            content,
            tags=tags,
            metadata=metadata,
            scope=scope,
            expires_at=expires_at,
            expected_version=expected_version,
        )

    def delete(self, id: str, *, purge: bool = False, expected_version: int | None = None) -> None:
        """Mark a memory deleted (a new version; it stops appearing in search); ``purge=True``
        erases it. ``expected_version`` as in ``update``."""
        if purge:
            write.purge(self._ctx, id, expected_version=expected_version)
        else:
            write.set_status(self._ctx, id, Status.DELETED, expected_version=expected_version)

    def restore(self, id: str, *, expected_version: int | None = None) -> MemoryItem:
        """Undo a soft delete or archive: the memory becomes active again (a new version)."""
        return write.set_status(self._ctx, id, Status.ACTIVE, expected_version=expected_version)

    def set_kind(
        self,
        id: str,
        kind: Kind | str,
        *,
        note: str | None = None,
        expected_version: int | None = None,
    ) -> MemoryItem:
        """Move a memory to another kind (plaintext, activation, parametric) as a new version:
        the text stays and stays searchable; ``note`` says why (``metadata["cubemem_tier"]``).
        The tiers of ``cubemem_activation.ParametricMemory.migrate`` use it."""
        return write.set_kind(self._ctx, id, kind, note=note, expected_version=expected_version)

    def extract(self, ids: Sequence[str]) -> list[MemoryItem]:
        """Run the cube's ``extractor`` over these raw turns now; returns the facts stored."""
        return followup.extract(self._ctx, inputs.memory_ids(ids))

    def consolidate(self, ids: Sequence[str] | None = None) -> list[consolidation.Merge]:
        """Merge near-duplicates of ``ids`` (default: every active fact); see ``undo_merge``."""
        if ids is None:
            ids = [i.id for i in self.iter() if consolidation.mergeable(i)]
        return consolidation.consolidate(self._ctx, inputs.memory_ids(ids))

    def undo_merge(self, merged_id: str) -> tuple[MemoryItem, MemoryItem]:
        """Reverse a merge: (the survivor as it was before, the merged memory, active again)."""
        return consolidation.undo_merge(self._ctx, inputs.memory_id(merged_id))

    def lifecycle(
        self, *, now: datetime | None = None, dry_run: bool = False
    ) -> lifecycle.LifecycleReport:
        """Archive expired memories and those whose decay score fell below the threshold."""
        return lifecycle.sweep(self._ctx, now=now, dry_run=dry_run)

    def working_memory(
        self, agent: str | None = None, session: str | None = None
    ) -> list[MemoryItem]:
        """The hot memories of an agent/session, hottest first (active ones only)."""
        ids = self._ctx.working.ids((agent, session))
        items = {i.id: i for i in self._ctx.store.get(ids) if i.status is Status.ACTIVE}
        return [items[i] for i in ids if i in items]

    def on_working_memory_change(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(change)`` when a hot set changes; returns an unsubscribe function."""
        return self._ctx.working.subscribe(callback)

    def _enqueue(self, items: Sequence[MemoryItem]) -> list[str]:
        self.scheduler.start().submit([add_task(self.id, items)])
        return [i.id for i in items]

    def _store_now(self, items: Sequence[MemoryItem], progress: Progress | None = None) -> None:
        stored = write.insert(self._ctx, items, progress=progress)
        followup.run_inline(self._ctx, stored)

    # -- keyed memories -------------------------------------------------------------------
    def put(
        self,
        namespace: Sequence[str],
        key: str,
        content: str,
        *,
        value: dict[str, Any] | None = None,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        ttl: timedelta | None = None,
    ) -> MemoryItem:
        """Store ``content`` under ``(namespace, key)``, replacing what was there as a new version.

        A key-value view of the cube (LangGraph's store is built on it): the memory's id is
        ``address_id(namespace, key)``, the old text stays in ``history``, a deleted key comes
        back to life. ``value`` keeps a structured document beside its text; ``ttl`` gives a
        sliding lifetime that ``refresh`` extends.
        """
        return keyed.put(
            self._ctx,
            namespace,
            key,
            content,
            value=value,
            scope=scope,
            tags=tags,
            metadata=metadata,
            ttl=ttl,
        )

    def lookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        """The live memory stored under ``(namespace, key)``: None if absent, deleted or expired."""
        return keyed.lookup(self._ctx, namespace, key)

    def refresh(self, ids: Sequence[str]) -> list[MemoryItem]:
        """Extend the lifetime of memories with a ``ttl`` to now + ttl; others are left alone."""
        return keyed.refresh(self._ctx, ids)

    def namespaces(
        self, prefix: Sequence[str] = (), *, filters: FiltersLike = None
    ) -> list[tuple[str, ...]]:
        """The distinct namespaces of live keyed memories under ``prefix``, sorted."""
        return keyed.namespaces(self._ctx, prefix, filters=filters)

    # -- reading --------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: FiltersLike = None,
        min_score: float | None = None,
        include_superseded: bool = False,
    ) -> list[SearchResult]:
        """The ``k`` memories most relevant to ``query`` (dense + BM25, fused); with
        ``min_score``, only those whose ``relevance`` (0 to 1) reaches it. Current truth by
        default; ``include_superseded=True`` also returns facts a newer one contradicted (each
        with ``valid_to`` and ``superseded_by``)."""
        return read.search(
            self._ctx,
            query,
            k=k,
            filters=filters,
            min_score=min_score,
            include_superseded=include_superseded,
        )

    def get(self, id: str) -> MemoryItem:
        """One memory by id, whatever its status."""
        return write.get(self._ctx, id)

    def history(self, id: str) -> list[MemoryItem]:
        """Every version of a memory, oldest first; the last is the current one."""
        return self._ctx.store.versions(write.get(self._ctx, id).id)

    def list(
        self, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
    ) -> list[MemoryItem]:
        """A page of memories in insertion order."""
        return read.page(self._ctx, filters, limit=limit, offset=offset)

    def iter(self, filters: FiltersLike = None, *, page_size: int = 500) -> Iterator[MemoryItem]:
        """Every matching memory, fetched a page at a time."""
        return read.iterate(self._ctx, filters, page_size=page_size)

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.iter()

    def count(self, filters: FiltersLike = None) -> int:
        """How many memories match ``filters`` (default: the active, unexpired ones)."""
        return read.count(self._ctx, filters)

    def __len__(self) -> int:
        return self.count()

    def stats(self) -> dict[str, Any]:
        """Counts by status, the embedder, and the store's revision."""
        now = self._ctx.clock()
        store = self._ctx.store
        by_status = {
            s.value: store.count(Filters(status=[s], include_expired=True), now=now) for s in Status
        }
        return {
            "cube": self.name,
            "id": self.id,
            "path": str(self._path),
            "memories": sum(by_status.values()),
            "by_status": by_status,
            "expired": by_status["active"] - self.count(),
            "embedder": self._manifest.embedder,
            "dimension": self._manifest.dimension,
            "format_version": self._manifest.format_version,
            "revision": store.revision(),
        }

    # -- moving cubes ---------------------------------------------------------------------
    def export(self, archive_path: str | Path) -> Path:
        """Write the whole cube (every memory, every version) into one archive file."""
        return transfer.export(self._ctx, self._manifest, Path(archive_path))

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
        settings = settings or Settings()
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InvalidInputError(f"{path} already exists; import into a new folder")
        manifest, items, versions = archive.read(
            Path(archive_path),
            max_bytes=settings.max_archive_bytes,
            max_content_bytes=settings.max_content_bytes,
        )
        chosen = as_embedder(embedder) if embedder is not None else None
        name = chosen.name if chosen is not None else settings.embedder
        if manifest.embedder != name:
            raise IncompatibleCubeError(
                f"the archive was built with embedder {manifest.embedder!r}, not {name!r}; pass "
                "the embedder it was built with (embedder=...) or set CUBEMEM_EMBEDDER to it — "
                "an archive never chooses which model is loaded"
            )
        if chosen is None:
            chosen = default_embedder(settings, name, manifest.dimension)
        manifest.check_embedder(chosen.name, chosen.dimension)
        path.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{path.name}.import-", dir=path.parent))
        try:
            cls.create(building, name=manifest.name, embedder=chosen, settings=settings).close()
            write_manifest(  # the archive's identity, id included; the engine is ours
                building,
                manifest.model_copy(update={"store": engine_of(settings.store_url)}),
            )
            with cls.open(building, embedder=chosen, settings=settings) as cube:
                write.insert(cube._ctx, items, history=versions)
            if path.exists():
                path.rmdir()  # the empty folder the caller made
            building.rename(path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return cls.open(path, embedder=chosen, settings=settings)

    @classmethod
    def reindex(
        cls,
        path: str | Path,
        embedder: EmbedderLike,
        *,
        settings: Settings | None = None,
    ) -> MemCube:
        """Move the cube at ``path`` to another embedder: every memory (and every version) is
        embedded again and the manifest records the new embedder. Ids, provenance, versions and
        usage stay. Built beside the cube and swapped in at the end, so an interruption leaves
        the old cube as it was. Returns the cube, open with ``embedder``.
        """
        path = Path(path)
        target = as_embedder(embedder)
        settings = settings or Settings()
        if engine_of(settings.store_url) != "sqlite":
            raise InvalidInputError(
                "reindex rebuilds a cube beside the old one, which only the embedded engine "
                "can do today; export the cube, and import it with the new embedder"
            )
        building = path.with_name(f".{path.name}.reindex")
        previous = path.with_name(f".{path.name}.before-reindex")
        for leftover in (building, previous):
            if leftover.exists():
                raise InvalidInputError(
                    f"{leftover} is left from an interrupted reindex; remove it and run again"
                )
        with cls.open(path, settings=settings.model_copy(update={"workers": 0})) as source:
            stats = source.scheduler.queue.stats()
            if stats.ready or stats.in_flight:
                raise InvalidInputError(
                    f"cube {source.name!r} has {stats.ready + stats.in_flight} queued writes; "
                    "let them finish (open the cube, or run `cubemem worker`) before reindexing"
                )
            manifest = source.manifest
            items = list(source.iter(Filters.everything()))
            versions = [v for item in items for v in source.history(item.id)]
        try:
            cls.create(building, name=manifest.name, embedder=target, settings=settings).close()
            write_manifest(
                building,
                manifest.model_copy(
                    update={"embedder": target.name, "dimension": target.dimension}
                ),
            )
            with cls.open(building, embedder=target, settings=settings) as rebuilt:
                write.insert(rebuilt._ctx, items, history=versions)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        path.rename(previous)
        building.rename(path)
        shutil.rmtree(previous, ignore_errors=True)
        log.info("reindexed cube %s with %s", manifest.name, target.name)
        return cls.open(path, embedder=target, settings=settings)

    @classmethod
    def compose(
        cls,
        cubes: Sequence[MemCube],
        path: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
    ) -> MemCube:
        """A new cube holding every memory of ``cubes``, each remembering its origin cube."""
        cubes = inputs.as_list(cubes, "cubes")
        if not cubes or not all(isinstance(c, MemCube) for c in cubes):
            raise InvalidInputError("compose takes a non-empty list of MemCube objects")
        first = cubes[0]
        for other in cubes[1:]:
            first.manifest.check_embedder(other.manifest.embedder, other.manifest.dimension)
        target = cls.create(
            path, name=name, owner=owner, embedder=first.embedder, settings=first.settings
        )
        for source in cubes:
            transfer.copy_into(source.context, target.context)
        return target


def _store(settings: Settings, path: Path, manifest: Manifest, embedder: Embedder) -> MemoryStore:
    return open_store(
        settings.store_url,
        path,
        manifest.id,
        manifest.dimension,
        embedder,
        busy_timeout_s=settings.busy_timeout_s,
    )


def default_embedder(
    settings: Settings, name: str | None = None, dimension: int | None = None
) -> Embedder:
    """The embedder ``name`` names (default: the configured one); with ``dimension`` (from a
    manifest) nothing is loaded until the first embedding."""
    name = name or settings.embedder
    if dimension is None:
        return as_embedder(name)
    return embedder_for(
        name, dimension, device=settings.device, batch_size=settings.embed_batch_size
    )
