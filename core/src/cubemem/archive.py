"""The export format: one zip holding the manifest and every memory and version as JSON lines."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from cubemem.errors import IncompatibleCubeError, InvalidInputError, NotFoundError
from cubemem.manifest import Manifest, parse_manifest
from cubemem.model import MemoryItem

MANIFEST = "manifest.json"
MEMORIES = "memories.jsonl"
VERSIONS = "versions.jsonl"


def write(
    path: Path, manifest: Manifest, items: Sequence[MemoryItem], versions: Sequence[MemoryItem]
) -> Path:
    """Write the archive atomically (a temporary file renamed into place)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give the archive a file name (.zip)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, manifest.model_dump_json(indent=2))
        zf.writestr(MEMORIES, "".join(item.model_dump_json() + "\n" for item in items))
        zf.writestr(VERSIONS, "".join(v.model_dump_json() + "\n" for v in versions))
    os.replace(tmp, path)
    return path


def read(path: Path) -> tuple[Manifest, list[MemoryItem], list[MemoryItem]]:
    """Read and validate an archive written by ``write``."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no archive at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = parse_manifest(json.loads(zf.read(MANIFEST)), where=f"{path}:{MANIFEST}")
            items = _lines(zf.read(MEMORIES))
            versions = _lines(zf.read(VERSIONS))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IncompatibleCubeError(f"{path} is not a cubemem archive: {exc}") from exc
    except ValidationError as exc:
        raise IncompatibleCubeError(f"{path} holds an invalid memory: {exc}") from None
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise IncompatibleCubeError(f"{path} holds the same memory id twice")
    return manifest, items, versions


def _lines(raw: bytes) -> list[MemoryItem]:
    return [
        MemoryItem.model_validate_json(line) for line in raw.decode("utf-8").splitlines() if line
    ]
