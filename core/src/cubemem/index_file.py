"""The search index persisted beside the store, so a cube opens without rebuilding it.

A ``SearchIndex`` (slots, filter columns, bfloat16 vectors, packed BM25, sessions, the entity
graph) is what a retriever derives from every row: at 10^6 memories that took about a minute
at each open. ``save`` writes it to one file in the cube's folder (``search.index``) at the
store revision it reflects; ``load`` maps it back and the retriever applies the change feed
since that revision (what any process wrote meanwhile), so an open costs what changed.

The file is derived data and never trusted:

- a versioned header names the format, the revision, the dimension, the index's settings and
  every block's offset, length and CRC-32; a different format, settings or dimension, or a
  revision ahead of the store's (a store restored from a backup) is refused;
- the header and the object part (pickle protocol 5) carry an HMAC-SHA256 under a key kept
  in this user's cache folder (``~/.cache/cubemem/index.key``, made on first use, mode 0600),
  checked before anything is unpickled: a file written elsewhere (a copied or downloaded
  cube) or altered is refused, never loaded — unpickling is code execution;
- the large arrays (vectors, BM25's postings, the columns) are out-of-band blocks, 64-byte
  aligned, each checked against its CRC-32 (read with ``pread``, so the check does not map
  them into the process) and then mapped copy-on-write.

Anything refused is logged and rebuilt from the rows; the rebuilt index replaces the file.
Writes go to a temporary file renamed over the old one: a reader sees one whole file or the
other, and two processes saving at once each leave a whole file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import mmap
import os
import pickle
import secrets
import struct
import zlib
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"CUBEMIDX"
FORMAT = 3
"""Bumped whenever the pickled classes or the layout change: older files are rebuilt."""
NAME = "search.index"
FORGOTTEN = "search.index.forgotten"
"""The store revision of the last forget: an index built before it is never written."""
ALIGN = 64
INBAND = 1 << 16
"""Arrays smaller than this stay inside the pickle (one block each would cost more)."""


class Refused(Exception):
    """The file cannot be used (why, in words); the caller rebuilds."""


def key_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cubemem" / "index.key"


def machine_key() -> bytes:
    """This user's key for the files' HMAC, made on first use."""
    path = key_path()
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # the first process to make one wins; the others read it
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _mac(key: bytes, header: dict[str, Any], body: bytes) -> str:
    signed = json.dumps({k: v for k, v in header.items() if k != "mac"}, sort_keys=True)
    return hmac.new(key, signed.encode() + b"\x00" + body, hashlib.sha256).hexdigest()


def _crc(fd: int, offset: int, length: int) -> int:
    crc, at, end = 0, offset, offset + length
    while at < end:
        chunk = os.pread(fd, min(1 << 24, end - at), at)
        if not chunk:
            raise Refused("the file is shorter than its header says")
        crc = zlib.crc32(chunk, crc)
        at += len(chunk)
    return crc


def _pad(n: int) -> int:
    return -n % ALIGN


def save(path: Path, index: Any, *, revision: int, meta: dict[str, Any]) -> int:
    """Write ``index`` (at store ``revision``) to ``path``; returns the bytes written.
    ``meta``: what must match on load (dimension, settings), compared as given."""
    blocks: list[memoryview] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < INBAND:
            return True  # in band
        blocks.append(view)
        return False

    body = pickle.dumps(index, protocol=5, buffer_callback=keep)
    header: dict[str, Any] = {"format": FORMAT, "revision": revision, "meta": meta}
    layout, at = [], 0  # offsets relative to the end of the header
    at += len(body) + _pad(len(body))
    for view in blocks:
        layout.append([at, view.nbytes, zlib.crc32(view)])
        at += view.nbytes + _pad(view.nbytes)
    header["body"] = len(body)
    header["blocks"] = layout
    header["mac"] = _mac(machine_key(), header, body)
    encoded = json.dumps(header).encode()
    start = 16 + len(encoded)
    start += _pad(start)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(MAGIC + struct.pack("<Q", len(encoded)) + encoded)
            fh.write(b"\x00" * (start - fh.tell()))
            fh.write(body)
            for view in blocks:
                fh.write(b"\x00" * _pad(fh.tell() - start))
                fh.write(view)
            size = fh.tell()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def load(path: Path, *, store_revision: int, meta: dict[str, Any]) -> tuple[Any, int]:
    """The index in ``path`` and the revision it reflects; ``Refused`` (why) when it is
    missing, of another format, settings, machine or revision, altered, or damaged."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise Refused("no persisted index yet") from None
    try:
        head = os.pread(fd, 16, 0)
        if len(head) < 16 or head[:8] != MAGIC:
            raise Refused("not a cubemem index file")
        (length,) = struct.unpack("<Q", head[8:])
        if length > 1 << 20:
            raise Refused("header too large")
        try:
            header = json.loads(os.pread(fd, length, 16))
        except ValueError:
            raise Refused("unreadable header") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise Refused(f"format {header.get('format')!r}, this version reads {FORMAT}")
        if header.get("meta") != meta:
            raise Refused(f"built for {header.get('meta')}, not {meta}")
        revision = header.get("revision")
        if not isinstance(revision, int) or revision > store_revision:
            raise Refused(f"at revision {revision}, ahead of the store's {store_revision}")
        start = 16 + length
        start += _pad(start)
        body = os.pread(fd, int(header["body"]), start)
        if len(body) != header["body"]:
            raise Refused("the file is shorter than its header says")
        if not hmac.compare_digest(str(header.get("mac")), _mac(machine_key(), header, body)):
            raise Refused("its signature does not match (written elsewhere, or altered)")
        blocks = header["blocks"]
        for offset, size, crc in blocks:
            if _crc(fd, start + offset, size) != crc:
                raise Refused("a block fails its checksum")
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY) if blocks else None
    except OSError as exc:
        raise Refused(f"unreadable ({exc})") from exc
    finally:
        os.close(fd)
    views = [memoryview(mapped)[start + o : start + o + n] for o, n, _ in blocks] if mapped else []
    try:
        return pickle.loads(body, buffers=views), revision
    except Exception as exc:  # a format bump forgotten: refuse, rebuild
        raise Refused(f"could not be unpickled ({exc})") from exc


class Keeper:
    """When a retriever's index is read from its file and written back.

    Loaded once, when the retriever first needs an index. Written after a build from every
    row (the slow case this file exists for) and, at ``close`` or ``warm``, when the rows
    applied since the file was written reach ``max(MIN_STALE, STALE_SHARE × size)``: a file a
    few writes behind costs the next open only those writes, so it is not rewritten for them.
    """

    MIN_STALE = 1_000
    STALE_SHARE = 0.05

    def __init__(self, folder: Path | None) -> None:
        self.path = None if folder is None else folder / NAME
        self.behind = 0
        """Rows and purges applied since the file was written (or since a full build)."""
        self.fresh = False
        """Whether the index in memory was built from every row and not yet written."""
        self.since = -1
        """The store revision the index in memory was loaded or built from scratch at."""

    def load(self, store_revision: int, meta: dict[str, Any]) -> Any | None:
        if self.path is None:
            return None
        self.remove_partial(dead_only=True)
        try:
            index, _ = load(self.path, store_revision=store_revision, meta=meta)
        except Refused as why:
            log.info("search index of %s rebuilt from the rows: %s", self.path.parent, why)
            return None
        self.behind, self.fresh, self.since = 0, False, index.revision
        return index

    def applied(self, changes: int, full: bool, revision: int) -> None:
        self.fresh = self.fresh or full
        self.behind += changes
        if full:
            self.since = revision

    def due(self, size: int) -> bool:
        return self.fresh or self.behind >= max(self.MIN_STALE, self.STALE_SHARE * size)

    def discard(self, revision: int) -> None:
        """After a forget at store ``revision``: remove the file (it holds the forgotten words)
        and leave a mark, so that no process whose index was built before the forget (its
        vocabulary and entity names hold them too) writes one again."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.remove_partial(dead_only=False)  # a killed writer's half file holds them too
            try:
                self.path.with_name(FORGOTTEN).write_text(str(revision), encoding="ascii")
            except OSError as exc:
                log.warning("could not mark the forget in %s: %s", self.path.parent, exc)
        self.behind, self.fresh = 0, False

    def remove_partial(self, *, dead_only: bool) -> None:
        """Remove the temporary files of writes that never finished (``NAME.<pid>.<hex>.tmp``,
        left by a process killed before its rename): those of processes no longer running,
        or (after a forget) every one — a writer still running then fails and logs it."""
        assert self.path is not None
        for tmp in self.path.parent.glob(f"{NAME}.*.tmp"):
            pid = tmp.name.removeprefix(f"{NAME}.").split(".")[0]
            if dead_only and pid.isdigit() and _running(int(pid)):
                continue
            tmp.unlink(missing_ok=True)

    def _predates_a_forget(self) -> bool:
        assert self.path is not None
        try:
            return int(self.path.with_name(FORGOTTEN).read_text(encoding="ascii")) > self.since
        except (OSError, ValueError):
            return False

    def save(self, index: Any, meta: dict[str, Any]) -> None:
        """Write the index if it is due (a failure is logged: the file is only a cache)."""
        if self.path is None or not self.path.parent.is_dir() or not self.due(index.size):
            return
        if self._predates_a_forget():
            log.info("search index of %s not saved: built before a forget", self.path.parent)
            return
        try:
            size = save(self.path, index, revision=index.revision, meta=meta)
        except OSError as exc:
            log.warning("could not save the search index of %s: %s", self.path.parent, exc)
            return
        self.behind, self.fresh = 0, False
        log.debug("saved the search index of %s (%d bytes)", self.path.parent, size)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
