"""MemCube: the unit of memory — add, search, version, delete, export, import and compose."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, overload

from pydantic import ValidationError

from cubemem import archive
from cubemem.embed import Embedder, SentenceTransformerEmbedder, check_vectors
from cubemem.errors import CubeBusyError, InvalidInputError, NotFoundError
from cubemem.manifest import Manifest, read_manifest, write_manifest
from cubemem.model import (
    Filters,
    MemoryInput,
    MemoryItem,
    Message,
    MetadataValue,
    Provenance,
    Scope,
    SearchResult,
    Status,
    address_id,
    check_json,
    check_namespace,
    utcnow,
    validate_content,
    validate_model,
)
from cubemem.retrieve import HybridRetriever, RetrievalConfig, embed_items
from cubemem.scheduler import consolidate as consolidation
from cubemem.scheduler import lifecycle as lifecycles
from cubemem.scheduler.queue import Task, TaskKind, open_queue
from cubemem.scheduler.scheduler import Scheduler
from cubemem.scheduler.working import Subscriber, WorkingMemory
from cubemem.settings import Settings
from cubemem.store import EmbeddedStore, Embedding, MemoryStore
from cubemem.store.base import Repair

log = logging.getLogger(__name__)

ContentLike = str | MemoryInput | dict[str, Any]
ScopeLike = Scope | dict[str, str | None] | None
FiltersLike = Filters | dict[str, Any] | None
MessageLike = Message | dict[str, Any]
Progress = Callable[[int], None]
Extractor = Callable[[Sequence[MemoryItem]], Sequence[ContentLike]]


class MemCube:
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
    ) -> None:
        self._path = path
        self._manifest = manifest
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self._retriever = HybridRetriever(store, embedder)
        self.last_repair: Repair = Repair()
        self._scheduler: Scheduler | None = None
        self._scheduler_lock = threading.Lock()
        self.working = WorkingMemory(settings.working_memory_size)
        self.merge_policy: consolidation.MergePolicy | None = None
        self.extractor: Extractor | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
    ) -> MemCube:
        """Make a new, empty cube in ``path`` (which must not exist or be empty)."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InvalidInputError(
                f"{path} already exists and is not an empty folder; open an existing cube with "
                "MemCube.open, or choose a new path"
            )
        settings = settings or Settings()
        embedder = embedder or _default_embedder(settings)
        manifest = Manifest(
            name=name or path.name,
            owner=owner,
            embedder=embedder.name,
            dimension=embedder.dimension,
        )
        path.mkdir(parents=True, exist_ok=True)
        store = EmbeddedStore(path, embedder, busy_timeout_s=settings.busy_timeout_s)
        write_manifest(path, manifest)
        log.info("created cube %s at %s", manifest.name, path)
        return cls(path, manifest, store, embedder, settings)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
    ) -> MemCube:
        """Open an existing cube, repairing its index if a crash left it behind the rows."""
        path = Path(path)
        manifest = read_manifest(path)
        settings = settings or Settings()
        embedder = embedder or _default_embedder(settings, manifest.embedder)
        manifest.check_embedder(embedder.name, embedder.dimension)
        store = EmbeddedStore(path, embedder, busy_timeout_s=settings.busy_timeout_s)
        cube = cls(path, manifest, store, embedder, settings)
        cube.last_repair = cube._store.reconcile(cube._embed)
        if settings.queue_url == "sqlite" and (path / "queue.sqlite3").exists():
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
        self._store.close()

    @property
    def scheduler(self) -> Scheduler:
        """The cube's scheduler (its queue is ``Settings.queue_url``); started on first use."""
        with self._scheduler_lock:
            if self._scheduler is None:
                queue = open_queue(
                    self._settings.queue_url,
                    self._path,
                    self.id,
                    sync=self._settings.queue_sync,
                    busy_timeout_s=self._settings.busy_timeout_s,
                )
                self._scheduler = Scheduler(self, queue)
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
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def retrieval(self) -> RetrievalConfig:
        """The fusion weights and pools search uses (defaults measured on LoCoMo)."""
        return self._retriever.config

    @retrieval.setter
    def retrieval(self, config: RetrievalConfig) -> None:
        if not isinstance(config, RetrievalConfig):
            raise InvalidInputError("retrieval must be a cubemem.retrieve.RetrievalConfig")
        self._retriever.config = config

    def __repr__(self) -> str:
        return f"MemCube(name={self.name!r}, path={str(self._path)!r})"

    # -- writing --------------------------------------------------------------------------
    @overload
    def add(
        self,
        content: ContentLike,
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> MemoryItem: ...

    @overload
    def add(
        self,
        content: Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> list[MemoryItem]: ...

    def add(
        self,
        content: ContentLike | Sequence[ContentLike],
        *,
        scope: ScopeLike = None,
        tags: Sequence[str] | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        wait: bool = True,
    ) -> Any:
        """Store one text (returns its item) or many (returns a list), embedded in batches.

        ``content`` may be a string, a ``MemoryInput`` (or its dict form) for per-item
        provenance, or a list of those. ``scope``, ``tags`` and ``metadata`` apply to all.
        With ``wait=False`` the write is queued durably and the new id (or ids) is returned at
        once; the scheduler stores it in the background (``scheduler.wait(ids)`` to wait).
        """
        single = isinstance(content, str | MemoryInput | dict)
        inputs = [content] if single else _as_list(content, "content")
        base_scope = _scope(scope)
        base_tags = _tags(tags)
        base_metadata = _metadata(metadata)
        items = [self._new_item(x, base_scope, base_tags, base_metadata) for x in inputs]
        if not wait:
            ids = self._enqueue(items)
            return ids[0] if single else ids
        self._write_new(items)
        self._after_write(items)
        return items[0] if single else items

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
    ) -> Any:
        """Store conversation turns raw: one memory per turn, keeping speaker, time and id.

        Turns of one session are searched with their neighbours (see ``cubemem.retrieve``);
        ``timestamp`` is the session time, used where a message carries none. ``wait=False``
        queues them and returns their ids (see ``add``).
        """
        turns = [validate_model(Message, m) for m in _as_list(messages, "messages")]
        base = _scope(scope)
        session_scope = base.model_copy(update={"session": session}) if session else base
        when = _timestamp(timestamp)
        base_tags, base_metadata = _tags(tags), _metadata(metadata)
        inputs = [
            MemoryInput(
                content=turn.content,
                scope=session_scope,
                metadata={**base_metadata, **turn.metadata},
                source_ids=[turn.id] if turn.id else [],
                speaker=turn.speaker,
                occurred_at=turn.timestamp or when,
            )
            for turn in turns
        ]
        items = [self._new_item(x, session_scope, base_tags, {}, "message") for x in inputs]
        if not wait:
            return self._enqueue(items)
        self._write_new(items, progress=progress)
        self._after_write(items)
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
    ) -> MemoryItem:
        """Write a new version of a memory; the old one stays in ``history``."""
        current = self.get(id)
        if current.status is Status.DELETED:
            raise InvalidInputError(f"memory {id} is deleted; restore it before updating")
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = validate_content(content, self._settings.max_content_bytes)
        if tags is not None:
            changes["tags"] = _tags(tags)
        if metadata is not None:
            changes["metadata"] = _metadata(metadata)
        if scope is not None:
            changes["scope"] = _scope(scope)
        if expires_at is not None:
            changes["expires_at"] = expires_at
        if not changes:
            raise InvalidInputError(
                f"update of {id} changes nothing; pass content, tags, metadata, scope or expires_at"
            )
        new = _revise(current, changes, version=current.version + 1)
        reindex = self._embed([new]) if "content" in changes else {}
        self._store.write([new], reindex)
        self.working.changed([id], "updated")
        return new

    def delete(self, id: str, *, purge: bool = False) -> None:
        """Mark a memory deleted (it stops appearing in search); ``purge=True`` erases it."""
        current = self.get(id)
        if purge:
            self._store.purge([current.id])
        elif current.status is not Status.DELETED:
            self._set_status(current, Status.DELETED)
        self.working.changed([id], "deleted")

    def restore(self, id: str) -> MemoryItem:
        """Undo a soft delete or archive: the memory becomes active again."""
        return self._set_status(self.get(id), Status.ACTIVE)

    def _set_status(self, item: MemoryItem, status: Status) -> MemoryItem:
        new = _revise(item, {"status": status}, version=item.version)
        self._store.write([new], {})
        return new

    # -- scheduler-backed management -------------------------------------------------------
    def consolidate(self, ids: Sequence[str] | None = None) -> list[consolidation.Merge]:
        """Merge near-duplicates of ``ids`` (default: every active fact); see ``undo_merge``."""
        if ids is None:
            ids = [i.id for i in self.iter() if consolidation.mergeable(i)]
        settings = self._settings
        return consolidation.consolidate(
            self,
            _as_list(ids, "ids"),
            similarity=settings.merge_similarity,
            overlap=settings.merge_overlap,
            policy=self.merge_policy,
        )

    def undo_merge(self, merged_id: str) -> tuple[MemoryItem, MemoryItem]:
        """Reverse a merge: (the survivor as it was before, the merged memory, active again)."""
        survivor, restored = consolidation.undo_merge(self, merged_id)
        self.working.changed([survivor.id], "updated")
        return survivor, restored

    def lifecycle(
        self, *, now: datetime | None = None, dry_run: bool = False
    ) -> lifecycles.LifecycleReport:
        """Archive expired memories and those whose decay score fell below the threshold."""
        report = lifecycles.sweep(
            self,
            now=now,
            half_life_days=self._settings.decay_half_life_days,
            archive_below=self._settings.archive_below,
            dry_run=dry_run,
        )
        if not dry_run:
            self.working.changed([*report.expired, *report.cold], "deleted")
        return report

    def working_memory(
        self, agent: str | None = None, session: str | None = None
    ) -> list[MemoryItem]:
        """The hot memories of an agent/session, hottest first (active ones only)."""
        ids = self.working.ids((agent, session))
        items = {i.id: i for i in self._store.get(ids) if i.status is Status.ACTIVE}
        return [items[i] for i in ids if i in items]

    def on_working_memory_change(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(change)`` when a hot set changes; returns an unsubscribe function."""
        return self.working.subscribe(callback)

    def _enqueue(self, items: Sequence[MemoryItem]) -> list[str]:
        scheduler = self.scheduler.start()
        scheduler.submit(
            [Task(kind=TaskKind.ADD, payload={"items": [i.model_dump(mode="json") for i in items]})]
        )
        return [i.id for i in items]

    def _after_write(self, items: Sequence[MemoryItem]) -> None:
        """What follows a write on both paths (inline and scheduler): consolidation if enabled,
        extraction if an extractor is set, and heat in the writers' working memory."""
        if self._settings.consolidate:
            self.consolidate([i.id for i in items])
        if self.extractor is not None:
            self._extract([i.id for i in items if i.provenance.source == "message"])
        by_key: dict[tuple[str | None, str | None], list[tuple[str, float]]] = {}
        for item in items:
            by_key.setdefault((item.scope.agent, item.scope.session), []).append((item.id, 1.0))
        for key, hits in by_key.items():
            self.working.record(key, hits)

    def _extract(self, ids: Sequence[str]) -> int:
        """Hand raw turns to ``self.extractor``; its facts are added (the extraction step)."""
        if self.extractor is None or not ids:
            return 0
        facts = list(self.extractor(self._store.get(list(ids))))
        if facts:
            self.add(facts)
        return len(facts)

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
        labels = check_namespace(tuple(namespace) if isinstance(namespace, list) else namespace)
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"key must be a non-empty str, got {key!r}")
        content = validate_content(content, self._settings.max_content_bytes)
        if value is not None:
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise InvalidInputError("value must be a dict with string keys")
            check_json(value)
        if ttl is not None and (not isinstance(ttl, timedelta) or ttl <= timedelta(0)):
            raise InvalidInputError(f"ttl must be a positive timedelta, got {ttl!r}")
        now = utcnow()
        fields: dict[str, Any] = {
            "content": content,
            "namespace": labels,
            "key": key,
            "value": value,
            "scope": _scope(scope),
            "tags": _tags(tags),
            "metadata": _metadata(metadata),
            "ttl": ttl,
            "expires_at": None if ttl is None else now + ttl,
            "status": Status.ACTIVE,
        }
        id_ = address_id(labels, key)
        current = self._store.get([id_])
        if not current:
            item = self._new_item(content, fields["scope"], fields["tags"], fields["metadata"])
            item = _revise(item, {**fields, "id": id_}, version=1)
            self._write_new([item])
            return item
        old = current[0]
        if all(
            getattr(old, name) == wanted for name, wanted in fields.items() if name != "expires_at"
        ):
            return self.refresh([old.id])[0] if ttl is not None else old
        new = _revise(old, fields, version=old.version + 1)
        self._store.write([new], self._embed([new]) if new.content != old.content else {})
        return new

    def lookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        """The live memory stored under ``(namespace, key)``: None if absent, deleted or expired."""
        labels = check_namespace(tuple(namespace) if isinstance(namespace, list) else namespace)
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"key must be a non-empty str, got {key!r}")
        found = self._store.get([address_id(labels, key)])
        if not found or found[0].status is not Status.ACTIVE:
            return None
        item = found[0]
        if item.expires_at is not None and item.expires_at <= utcnow():
            return None
        return item

    def refresh(self, ids: Sequence[str]) -> list[MemoryItem]:
        """Extend the lifetime of memories with a ``ttl`` to now + ttl; others are left alone."""
        now = utcnow()
        renewed = [
            item.model_copy(update={"expires_at": now + item.ttl})
            for item in self._store.get(list(dict.fromkeys(_as_list(ids, "ids"))))
            if item.ttl is not None and item.status is Status.ACTIVE
        ]
        if renewed:
            self._store.write(renewed, {})
        return renewed

    def namespaces(
        self, prefix: Sequence[str] = (), *, filters: FiltersLike = None
    ) -> list[tuple[str, ...]]:
        """The distinct namespaces of live keyed memories under ``prefix``, sorted."""
        labels = check_namespace(tuple(prefix), allow_empty=True)
        parsed = Filters.parse(filters).model_copy(update={"namespace": labels})
        return self._store.namespaces(parsed, now=utcnow())

    # -- reading --------------------------------------------------------------------------
    def search(self, query: str, *, k: int = 10, filters: FiltersLike = None) -> list[SearchResult]:
        """The ``k`` memories most relevant to ``query`` (dense + BM25, fused)."""
        query = validate_content(query, self._settings.max_content_bytes, "search query")
        _check_k(k)
        parsed = Filters.parse(filters)
        now = utcnow()
        hits = self._retriever.search(query, k, parsed, now)
        items = {item.id: item for item in self._store.get([h[0] for h in hits])}
        results = [
            SearchResult(item=items[id_], score=s, dense_score=d, lexical_score=lex)
            for id_, s, d, lex in hits
            if id_ in items
        ]
        try:
            self._store.touch([r.id for r in results], now)
        except CubeBusyError as exc:  # usage counts are advisory; the answer is not
            log.warning("search usage not recorded: %s", exc)
        if results:
            key = (parsed.agent, parsed.session)
            self.working.record(key, [(r.id, 1.0 / (rank + 1)) for rank, r in enumerate(results)])
        return results

    def get(self, id: str) -> MemoryItem:
        """One memory by id, whatever its status."""
        if not isinstance(id, str) or not id:
            raise InvalidInputError(f"memory id must be a non-empty str, got {id!r}")
        found = self._store.get([id])
        if not found:
            raise NotFoundError(f"no memory {id!r} in cube {self.name!r}")
        return found[0]

    def history(self, id: str) -> list[MemoryItem]:
        """Every version of a memory, oldest first; the last is the current one."""
        self.get(id)
        return self._store.versions(id)

    def list(
        self, filters: FiltersLike = None, *, limit: int = 100, offset: int = 0
    ) -> list[MemoryItem]:
        """A page of memories in insertion order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInputError(f"offset must be an int >= 0, got {offset!r}")
        return self._store.select(Filters.parse(filters), now=utcnow(), limit=limit, offset=offset)

    def iter(self, filters: FiltersLike = None, *, page_size: int = 500) -> Iterator[MemoryItem]:
        """Every matching memory, fetched a page at a time."""
        offset = 0
        while page := self.list(filters, limit=page_size, offset=offset):
            yield from page
            offset += len(page)

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.iter()

    def count(self, filters: FiltersLike = None) -> int:
        return self._store.count(Filters.parse(filters), now=utcnow())

    def __len__(self) -> int:
        return self.count()

    def stats(self) -> dict[str, Any]:
        """Counts by status, the embedder, and the store's revision."""
        now = utcnow()
        by_status = {
            s.value: self._store.count(Filters(status=[s], include_expired=True), now=now)
            for s in Status
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
            "revision": self._store.revision(),
        }

    # -- moving cubes ---------------------------------------------------------------------
    def export(self, archive_path: str | Path) -> Path:
        """Write the whole cube (every memory, every version) into one archive file."""
        everything = Filters.everything()
        items = list(self.iter(everything))
        versions = [v for item in items for v in self._store.versions(item.id)]
        return archive.write(Path(archive_path), self._manifest, items, versions)

    @classmethod
    def import_(
        cls,
        archive_path: str | Path,
        path: str | Path,
        *,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
    ) -> MemCube:
        """Recreate an exported cube in ``path``: same id, memories, versions and usage."""
        manifest, items, versions = archive.read(Path(archive_path))
        settings = settings or Settings()
        embedder = embedder or _default_embedder(settings, manifest.embedder)
        manifest.check_embedder(embedder.name, embedder.dimension)
        cube = cls.create(path, name=manifest.name, embedder=embedder, settings=settings)
        cube._manifest = manifest
        write_manifest(cube.path, manifest)
        cube._write_new(items, history=versions)
        return cube

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
        cubes = _as_list(cubes, "cubes")
        if not cubes or not all(isinstance(c, MemCube) for c in cubes):
            raise InvalidInputError("compose takes a non-empty list of MemCube objects")
        first = cubes[0]
        for other in cubes[1:]:
            first.manifest.check_embedder(other.manifest.embedder, other.manifest.dimension)
        target = cls.create(
            path, name=name, owner=owner, embedder=first.embedder, settings=first._settings
        )
        everything = Filters.everything()
        for source in cubes:
            origin = {"cube": target.id}
            items, versions = [], []
            for item in source.iter(everything):
                items.append(_recube(item, origin, source.id))
                versions += [_recube(v, origin, source.id) for v in source._store.versions(item.id)]
            target._write_new(items, history=versions)
        return target

    # -- internals ------------------------------------------------------------------------
    def _new_item(
        self,
        raw: Any,
        scope: Scope,
        tags: list[str],
        metadata: dict[str, MetadataValue],
        source: str = "api",
    ) -> MemoryItem:
        given = raw if isinstance(raw, MemoryInput) else _input(raw)
        content = validate_content(given.content, self._settings.max_content_bytes)
        merged_metadata = {**metadata, **given.metadata}
        check_json(merged_metadata)
        item_scope = given.scope or scope
        try:
            return MemoryItem(
                cube=self.id,
                content=content,
                scope=item_scope,
                provenance=Provenance(
                    source=source,
                    author_agent=item_scope.agent,
                    source_ids=given.source_ids,
                    trust=given.trust,
                    speaker=given.speaker,
                    occurred_at=given.occurred_at,
                ),
                tags=[*tags, *given.tags],
                metadata=merged_metadata,
                expires_at=given.expires_at,
                context=given.context,
            )
        except ValidationError as exc:
            raise InvalidInputError(f"invalid memory: {exc.errors()[0]['msg']}") from None

    def _embed(self, items: Sequence[MemoryItem]) -> dict[str, Embedding]:
        embeddings = embed_items(self._embedder, items)
        if embeddings:
            check_vectors(
                [e.vector for e in embeddings.values()],
                len(items),
                self._manifest.dimension,
                self._embedder.name,
            )
        return embeddings

    def _write_new(
        self,
        items: Sequence[MemoryItem],
        *,
        history: Sequence[MemoryItem] = (),
        progress: Progress | None = None,
        embeddings: dict[str, Embedding] | None = None,
    ) -> None:
        """Embed everything first (so a bad vector writes nothing), then store in batches."""
        if embeddings is None:
            embeddings = self._embed(items) if items else {}
        batch = max(self._settings.embed_batch_size * 4, 256)
        by_id: dict[str, list[MemoryItem]] = {}
        for version in history:
            by_id.setdefault(version.id, []).append(version)
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            self._store.write(
                chunk,
                {i.id: embeddings[i.id] for i in chunk},
                [v for i in chunk for v in by_id.get(i.id, [])],
            )
            if progress is not None:
                progress(len(chunk))

    # -- async twins ----------------------------------------------------------------------
    async def aadd(self, content: Any, **kwargs: Any) -> MemoryItem | list[MemoryItem]:
        return await asyncio.to_thread(self.add, content, **kwargs)

    async def aadd_messages(self, messages: Any, **kwargs: Any) -> list[MemoryItem]:
        return await asyncio.to_thread(self.add_messages, messages, **kwargs)

    async def asearch(self, query: str, **kwargs: Any) -> list[SearchResult]:
        return await asyncio.to_thread(self.search, query, **kwargs)

    async def aput(
        self, namespace: Sequence[str], key: str, content: str, **kwargs: Any
    ) -> MemoryItem:
        return await asyncio.to_thread(self.put, namespace, key, content, **kwargs)

    async def alookup(self, namespace: Sequence[str], key: str) -> MemoryItem | None:
        return await asyncio.to_thread(self.lookup, namespace, key)

    async def arefresh(self, ids: Sequence[str]) -> list[MemoryItem]:
        return await asyncio.to_thread(self.refresh, ids)

    async def anamespaces(self, prefix: Sequence[str] = (), **kwargs: Any) -> list[tuple[str, ...]]:
        return await asyncio.to_thread(self.namespaces, prefix, **kwargs)

    async def aget(self, id: str) -> MemoryItem:
        return await asyncio.to_thread(self.get, id)

    async def aupdate(self, id: str, content: str | None = None, **kwargs: Any) -> MemoryItem:
        return await asyncio.to_thread(self.update, id, content, **kwargs)

    async def adelete(self, id: str, *, purge: bool = False) -> None:
        await asyncio.to_thread(self.delete, id, purge=purge)

    async def arestore(self, id: str) -> MemoryItem:
        return await asyncio.to_thread(self.restore, id)

    async def ahistory(self, id: str) -> list[MemoryItem]:
        return await asyncio.to_thread(self.history, id)

    async def alist(self, filters: FiltersLike = None, **kwargs: Any) -> list[MemoryItem]:
        return await asyncio.to_thread(self.list, filters, **kwargs)

    async def acount(self, filters: FiltersLike = None) -> int:
        return await asyncio.to_thread(self.count, filters)

    async def astats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.stats)


def _default_embedder(settings: Settings, name: str | None = None) -> Embedder:
    """The sentence-transformers model ``name`` (default: the configured one)."""
    return SentenceTransformerEmbedder(
        name or settings.embedder, device=settings.device, batch_size=settings.embed_batch_size
    )


def _as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
        raise InvalidInputError(f"{what} must be a list, got {type(value).__name__}")
    return list(value)


def _input(raw: Any) -> MemoryInput:
    if isinstance(raw, str):
        return MemoryInput(content=raw)
    if isinstance(raw, dict):
        return validate_model(MemoryInput, raw)
    raise InvalidInputError(
        f"memory content must be a str, got {type(raw).__name__}; convert it to text first"
    )


def _scope(scope: ScopeLike) -> Scope:
    if scope is None:
        return Scope()
    return scope if isinstance(scope, Scope) else validate_model(Scope, scope)


def _tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise InvalidInputError(f"tags must be a list of non-empty strings, got {tags!r}")
    return list(dict.fromkeys(t.strip() for t in tags))


def _metadata(metadata: dict[str, MetadataValue] | None) -> dict[str, MetadataValue]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidInputError("metadata must be a dict with string keys")
    bad = {k: v for k, v in metadata.items() if not isinstance(v, str | int | float | bool | None)}
    if bad:
        raise InvalidInputError(
            f"metadata values must be str, int, float, bool or None; got {bad!r}"
        )
    check_json(metadata)
    return dict(metadata)


def _timestamp(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"timestamp must be a datetime or ISO 8601 string, got {value!r}"
        ) from None


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")


def _revise(item: MemoryItem, changes: dict[str, Any], *, version: int) -> MemoryItem:
    try:
        data = item.model_dump() | changes | {"version": version, "updated_at": utcnow()}
        return MemoryItem.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid update: {exc.errors()[0]['msg']}") from None


def _recube(item: MemoryItem, origin: dict[str, str], source_cube: str) -> MemoryItem:
    provenance = item.provenance.model_copy(
        update={"origin_cube": item.provenance.origin_cube or source_cube}
    )
    return item.model_copy(update={**origin, "provenance": provenance})
