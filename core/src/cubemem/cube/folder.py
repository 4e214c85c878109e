"""A cube's folder: making one, opening one, importing an archive into a new one, moving one
to another embedder, composing several into one.

These work on the parts a cube is made of (``Parts``: path, manifest, store, embedder,
settings) and on ``Context`` objects, never on ``MemCube`` itself, so the cube class
(``cubemem.cube.local``) stays a runner of operations and this module stays below it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cubemem import archive
from cubemem.embed import Embedder, EmbedderLike, as_embedder, embedder_for
from cubemem.errors import CubeCorruptError, IncompatibleCubeError, InvalidInputError
from cubemem.manifest import MANIFEST_NAME, Manifest, read_manifest, write_manifest
from cubemem.model import Filters, MemoryItem
from cubemem.ops import read, transfer, write
from cubemem.ops.context import Context
from cubemem.scheduler import open_queue
from cubemem.settings import Settings
from cubemem.store import MemoryStore, engine_of, open_store

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """What a cube is made of, opened."""

    path: Path
    manifest: Manifest
    store: MemoryStore
    embedder: Embedder
    settings: Settings

    def context(self) -> Context:
        return Context.build(
            cube_id=self.manifest.id,
            name=self.manifest.name,
            dimension=self.manifest.dimension,
            store=self.store,
            embedder=self.embedder,
            settings=self.settings,
            folder=self.path,
        )


def is_cube(path: Path) -> bool:
    return (path / MANIFEST_NAME).exists()


def _refuse_existing(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(f"{path} already exists and is not an empty folder; {what}")


def create(
    path: Path,
    *,
    name: str | None,
    owner: str | None,
    embedder: EmbedderLike | None,
    settings: Settings | None,
) -> Parts:
    """A new, empty cube in ``path`` (which must not exist or be empty)."""
    _refuse_existing(path, "open an existing cube with MemCube.open, or choose a new path")
    settings = settings or Settings()
    chosen = as_embedder(embedder) if embedder is not None else default_embedder(settings)
    manifest = Manifest(
        name=name or path.name,
        owner=owner,
        embedder=chosen.name,
        dimension=chosen.dimension,
        store=engine_of(settings.store_url),
    )
    path.mkdir(parents=True, exist_ok=True)
    store = _store(settings, path, manifest, chosen)
    write_manifest(path, manifest)
    log.info("created cube %s at %s", manifest.name, path)
    return Parts(path, manifest, store, chosen, settings)


def open_(path: Path, *, embedder: EmbedderLike | None, settings: Settings | None) -> Parts:
    """The parts of the cube in ``path``, its embedder checked against the manifest."""
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
    chosen = (
        as_embedder(embedder)
        if embedder is not None
        else default_embedder(settings, manifest.embedder, manifest.dimension)
    )
    manifest.check_embedder(chosen.name, chosen.dimension)
    return Parts(path, manifest, _store(settings, path, manifest, chosen), chosen, settings)


def _fill(
    path: Path,
    manifest: Manifest,
    embedder: Embedder,
    settings: Settings,
    items: Sequence[MemoryItem],
    versions: Sequence[MemoryItem],
) -> None:
    """Make a cube in ``path`` with ``manifest``'s identity and these memories in it."""
    create(path, name=manifest.name, owner=None, embedder=embedder, settings=settings).store.close()
    write_manifest(path, manifest)
    parts = open_(path, embedder=embedder, settings=settings)
    try:
        write.insert(parts.context(), items, history=versions)
    finally:
        parts.store.close()


def import_(
    archive_path: Path, path: Path, *, embedder: EmbedderLike | None, settings: Settings | None
) -> Embedder:
    """Recreate an exported cube in ``path`` (all or nothing); returns the embedder used."""
    settings = settings or Settings()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(f"{path} already exists; import into a new folder")
    manifest, items, versions = archive.read(
        archive_path,
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
    try:  # the archive's identity, id included; the engine is ours
        own = manifest.model_copy(update={"store": engine_of(settings.store_url)})
        _fill(building, own, chosen, settings, items, versions)
        if path.exists():
            path.rmdir()  # the empty folder the caller made
        building.rename(path)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return chosen


def reindex(path: Path, embedder: EmbedderLike, *, settings: Settings | None) -> Embedder:
    """Rebuild the cube in ``path`` with another embedder, beside it, and swap it in."""
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
    source = open_(path, embedder=None, settings=settings)
    try:
        if settings.queue_url != "sqlite" or (path / "queue.sqlite3").exists():
            queue = open_queue(
                settings.queue_url,
                path,
                source.manifest.id,
                sync=settings.queue_sync,
                busy_timeout_s=settings.busy_timeout_s,
            )
            stats = queue.stats()
            queue.close()
            if stats.ready or stats.in_flight:
                raise InvalidInputError(
                    f"cube {source.manifest.name!r} has {stats.ready + stats.in_flight} queued "
                    "writes; let them finish (open the cube, or run `cubemem worker`) before "
                    "reindexing"
                )
        ctx = source.context()
        items = list(read.iterate(ctx, Filters.everything()))
        versions = [v for item in items for v in ctx.store.versions(item.id)]
        manifest = source.manifest
    finally:
        source.store.close()
    try:
        rebuilt = manifest.model_copy(
            update={"embedder": target.name, "dimension": target.dimension}
        )
        _fill(building, rebuilt, target, settings, items, versions)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    path.rename(previous)
    building.rename(path)
    shutil.rmtree(previous, ignore_errors=True)
    log.info("reindexed cube %s with %s", manifest.name, target.name)
    return target


def compose(
    sources: Sequence[tuple[Manifest, Context]],
    path: Path,
    *,
    name: str | None,
    owner: str | None,
    settings: Settings,
) -> Parts:
    """A new cube in ``path`` holding every memory of ``sources``, each remembering its origin."""
    first, context = sources[0]
    for other, _ in sources[1:]:
        first.check_embedder(other.embedder, other.dimension)
    parts = create(path, name=name, owner=owner, embedder=context.embedder, settings=settings)
    target = parts.context()
    for _, source in sources:
        transfer.copy_into(source, target)
    return parts


def _store(settings: Settings, path: Path, manifest: Manifest, embedder: Embedder) -> MemoryStore:
    return open_store(
        settings.store_url,
        path,
        manifest.id,
        manifest.dimension,
        embedder,
        busy_timeout_s=settings.busy_timeout_s,
        open_index=settings.open_index,
        index_build=(settings.pg_index_memory, settings.pg_index_workers),
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
