"""The export format: one zip holding the manifest and every memory and version as JSON lines.

Archives come from elsewhere and are read as hostile: only the three known members, each
decompressed in bounded chunks under ``Settings.max_archive_bytes`` (a zip bomb stops at the
cap, whatever its headers claim), every record validated as ``add``/``put`` would validate it
(``cubemem.limits``) before anything is written. Any fault is ``InvalidArchiveError``.
Writing goes through a securely created temporary file beside the target (an unpredictable
name, created exclusively, so a planted symlink is never followed), renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import ValidationError

from cubemem import limits
from cubemem.errors import (
    BackendUnavailableError,
    IncompatibleCubeError,
    InvalidArchiveError,
    InvalidInputError,
    NotFoundError,
)
from cubemem.manifest import Manifest, parse_manifest
from cubemem.model import MemoryItem

MANIFEST = "manifest.json"
MEMORIES = "memories.jsonl"
VERSIONS = "versions.jsonl"
MEMBERS = (MANIFEST, MEMORIES, VERSIONS)
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few KiB: its settings, policies, embedder
SHORTEST_RECORD = 128  # bytes: no memory's JSON line is shorter (it names its id, cube, times)


def write(
    path: Path, manifest: Manifest, items: Sequence[MemoryItem], versions: Sequence[MemoryItem]
) -> Path:
    """Write the archive atomically through a private temporary file in the target folder."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give the archive a file name (.zip)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: O_CREAT | O_EXCL, mode 0600, a random name — never an existing file or link
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BackendUnavailableError(f"cannot write an archive in {path.parent}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, manifest.model_dump_json(indent=2))
            with zf.open(MEMORIES, "w", force_zip64=True) as out:
                for item in items:
                    out.write((item.model_dump_json() + "\n").encode("utf-8"))
            with zf.open(VERSIONS, "w", force_zip64=True) as out:
                for version in versions:
                    out.write((version.model_dump_json() + "\n").encode("utf-8"))
        with open(tmp, "rb+") as done:
            os.fsync(done.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BackendUnavailableError(
            f"writing {path} failed: {exc}; nothing was written there (check free space)"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read(
    path: Path, *, max_bytes: int, max_content_bytes: int
) -> tuple[Manifest, list[MemoryItem], list[MemoryItem]]:
    """Read, bound and validate an archive written by ``write``; ``InvalidArchiveError`` on
    any fault (nothing is returned half-read)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no archive at {path}")
    budget = [max_bytes]
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            unknown = sorted(set(names) - set(MEMBERS))
            if unknown or len(names) != len(set(names)):
                raise InvalidArchiveError(
                    f"{path} holds members a cubemem archive does not: {unknown[:5]} "
                    "(or a member twice)"
                )
            raw_manifest = _member(zf, MANIFEST, path, budget, MAX_MANIFEST_BYTES)
            manifest = parse_manifest(json.loads(raw_manifest), where=f"{path}:{MANIFEST}")
            longest = 6 * max_content_bytes + (1 << 20)  # JSON escapes, metadata, versions
            items = _records(_lines(zf, MEMORIES, path, budget, longest), path, MEMORIES)
            versions = _records(_lines(zf, VERSIONS, path, budget, longest), path, VERSIONS)
    except InvalidArchiveError:
        raise
    except IncompatibleCubeError as exc:  # the manifest: too new, or invalid
        raise InvalidArchiveError(str(exc)) from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,  # an unsupported compression method
        RuntimeError,  # an encrypted member
        KeyError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        OSError,
    ) as exc:
        raise InvalidArchiveError(f"{path} is not a cubemem archive (unreadable: {exc})") from None
    _check(path, manifest, items, versions, max_content_bytes)
    return manifest, items, versions


def _member(zf: zipfile.ZipFile, name: str, path: Path, budget: list[int], most: int) -> bytes:
    """A member's bytes, decompressed a chunk at a time within the remaining budget and the
    member's own bound (``most`` bytes)."""
    info = zf.getinfo(name)
    if info.file_size > min(budget[0], most):
        raise _too_big(path, name, most)
    parts, size = [], 0
    with zf.open(info) as fh:
        while chunk := fh.read(min(CHUNK, most + 1 - size)):
            budget[0] -= len(chunk)
            size += len(chunk)
            if budget[0] < 0 or size > most:
                raise _too_big(path, name, most)
            parts.append(chunk)
    return b"".join(parts)


def _too_big(path: Path, name: str, most: int | None = None) -> InvalidArchiveError:
    if most is not None and name == MANIFEST:
        return InvalidArchiveError(
            f"{path}:{name} inflates past {most} bytes; no cube's manifest is that large"
        )
    return InvalidArchiveError(
        f"{path}:{name} inflates past the archive limit (Settings.max_archive_bytes, "
        "CUBEMEM_MAX_ARCHIVE_BYTES); raise it if the archive is trusted"
    )


def _lines(
    zf: zipfile.ZipFile, name: str, path: Path, budget: list[int], longest: int
) -> Iterator[tuple[int, bytes]]:
    """A member's lines, numbered, decompressed as they are read: never more than one line
    (at most ``longest`` bytes) in memory, never past the remaining budget, never a line
    shorter than a record (a blank one included: a member of empty lines would otherwise cost
    a pass per byte), so at most budget / ``SHORTEST_RECORD`` lines are ever read."""
    info = zf.getinfo(name)
    if info.file_size > budget[0]:
        raise _too_big(path, name)
    with zf.open(info) as fh:
        number = 0
        while line := fh.readline(longest + 1):
            number += 1
            budget[0] -= len(line)
            if budget[0] < 0:
                raise _too_big(path, name)
            if len(line) > longest:
                raise InvalidArchiveError(
                    f"{path}:{name} line {number} is over {longest} bytes; no memory of this "
                    "cube's limits is that long"
                )
            if len(line) < SHORTEST_RECORD:
                what = "blank" if not line.strip() else f"{len(line)} bytes"
                raise InvalidArchiveError(
                    f"{path}:{name} line {number} is {what}; every line of a cubemem archive "
                    f"is one memory's record (at least {SHORTEST_RECORD} bytes)"
                )
            yield number, line


def _records(lines: Iterator[tuple[int, bytes]], path: Path, member: str) -> list[MemoryItem]:
    out = []
    for number, line in lines:
        try:
            out.append(MemoryItem.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "record"
            raise InvalidArchiveError(
                f"{path}:{member} line {number}: {where}: {err['msg']}"
            ) from None
    return out


def _check(
    path: Path,
    manifest: Manifest,
    items: list[MemoryItem],
    versions: list[MemoryItem],
    max_content_bytes: int,
) -> None:
    """Every record as ``add``/``put`` would check it, and consistent with the others."""
    for member, records in ((MEMORIES, items), (VERSIONS, versions)):
        for number, record in enumerate(records, start=1):
            try:
                limits.item(record, max_content_bytes)
            except InvalidInputError as exc:
                raise InvalidArchiveError(f"{path}:{member} record {number}: {exc}") from None
            if record.cube != manifest.id:
                raise InvalidArchiveError(
                    f"{path}:{member} record {number} belongs to cube {record.cube!r}, not to "
                    f"the archive's cube {manifest.id!r}"
                )
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise InvalidArchiveError(f"{path} holds the same memory id twice")
    known = set(ids)
    stray = [v.id for v in versions if v.id not in known]
    if stray:
        raise InvalidArchiveError(
            f"{path} holds versions of memories it does not hold: {stray[:3]}"
        )
