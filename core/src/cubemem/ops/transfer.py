"""Moving memories between cubes: export to an archive, compose several cubes into one."""

from __future__ import annotations

from pathlib import Path

from cubemem import archive
from cubemem.manifest import Manifest
from cubemem.model import Filters, MemoryItem
from cubemem.ops.context import Context
from cubemem.ops.read import iterate
from cubemem.ops.redaction import redacted
from cubemem.ops.write import insert


def export(ctx: Context, manifest: Manifest, path: Path) -> Path:
    """Write every memory and every version of the cube into one archive file."""
    items = list(iterate(ctx, Filters.everything()))
    versions = [v for item in items for v in ctx.store.versions(item.id)]
    return archive.write(path, manifest, items, versions)


def copy_into(source: Context, target: Context) -> list[MemoryItem]:
    """Every memory of ``source`` (with its history) into ``target``, each remembering the cube
    it came from and redacted by ``target``'s policy; memories already there are skipped."""

    def recube(item: MemoryItem) -> MemoryItem:
        provenance = item.provenance.model_copy(
            update={"origin_cube": item.provenance.origin_cube or source.cube_id}
        )
        moved = item.model_copy(update={"cube": target.cube_id, "provenance": provenance})
        return redacted(target, moved)

    items, versions = [], []
    for item in iterate(source, Filters.everything()):
        items.append(recube(item))
        versions += [recube(v) for v in source.store.versions(item.id)]
    return insert(target, items, history=versions)
