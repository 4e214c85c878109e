"""The embedded engine's Chroma folder: ``ChromaIndex`` (the index one process at a time
owns), checksums of a cleanly closed index, the probe that tells a sound index from a damaged
one, and opening it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.embed import Embedder
from cubemem.errors import BackendUnavailableError
from cubemem.store.base import Embedding

log = logging.getLogger(__name__)

PAGE = 10_000  # Chroma caps a statement's SQL variables: it is read a page at a time
SUMS = "cubemem-sums.json"
"""Checksums of the index files, written at a clean close and checked at the next open."""

PROBE = """
import sys, numpy, chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
for collection in client.list_collections():
    count, offset = collection.count(), 0
    while True:  # every entry, as the reconcile after open reads them
        page = collection.get(include=["metadatas", "embeddings"], limit=5000, offset=offset)
        offset += len(page["ids"])
        if len(page["ids"]) < 5000:
            break
    if count:
        collection.query(query_embeddings=[numpy.ones(int(sys.argv[2])).tolist()], n_results=10)
"""


def file_sums(path: Path) -> dict[str, object]:
    """CRC-32 of every index file (against damage, not tampering: 3.5 GB/s here against
    blake2b's 0.6, which made the check at open take seconds at 10^6 vectors)."""
    files: dict[str, int] = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != SUMS):
        crc = 0
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 24):
                crc = zlib.crc32(chunk, crc)
        files[str(file.relative_to(path))] = crc
    return {"algorithm": "crc32", "files": files}


def write_sums(path: Path) -> None:
    if path.is_dir():
        tmp = path / (SUMS + ".tmp")
        tmp.write_text(json.dumps(file_sums(path)), encoding="utf-8")
        os.replace(tmp, path / SUMS)


def vouched(path: Path) -> bool | None:
    """Whether the files match the checksums of the last clean close (None: there are none,
    after a crash). Sums of earlier versions (blake2b) are still read."""
    try:
        recorded = json.loads((path / SUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    if "algorithm" not in recorded:  # written by cubemem before 0.5: blake2b per file
        return recorded == _blake2b_sums(path)
    return recorded.get("algorithm") == "crc32" and recorded == file_sums(path)


def _blake2b_sums(path: Path) -> dict[str, str]:
    sums = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != SUMS):
        digest = hashlib.blake2b(digest_size=16)
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        sums[str(file.relative_to(path))] = digest.hexdigest()
    return sums


def index_sound(path: Path, dimension: int) -> bool:
    """Whether the index files can be loaded: they match the checksums of the last clean
    close, or — after a crash, when there are none — a child process loads and queries them
    without failing (a damaged HNSW file can crash the process that loads it)."""
    if not path.exists():
        return True
    matched = vouched(path)
    if matched is not None:
        return matched
    try:
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(path), str(dimension)],
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not probe the vector index in %s: %s", path, exc)
        return False
    if probe.returncode != 0:
        log.warning("the vector index in %s failed to load: %s", path, probe.stderr[-500:])
    return probe.returncode == 0


def open_index(path: Path, embedder: Embedder) -> tuple[Any, Any]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from cubemem.store.chroma_embedding import CubememEmbeddingFunction

    try:
        client = chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
        )
        collection = client.get_or_create_collection(
            "memories",
            # chroma types the function for text and images; ours embeds text only
            embedding_function=CubememEmbeddingFunction(embedder),  # type: ignore[arg-type]
            configuration={"hnsw": {"space": "ip"}},
        )
    except Exception as exc:  # chromadb raises assorted errors for a broken folder
        raise BackendUnavailableError(f"cannot open the vector index in {path}: {exc}") from exc
    return client, collection


class ReadWrite:
    """Many readers, or one writer (a rebuild of the index)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class ChromaIndex:
    """The cube's Chroma index (``path/index``), held by one process at a time: the one that
    holds ``path/index.lock`` opens it (``try_own``); the others work without it."""

    def __init__(self, path: Path, embedder: Embedder) -> None:
        self._path = path
        self._embedder = embedder
        self._fd: int | None = None
        self.client: Any = None
        self.collection: Any = None
        self._max_batch = 1
        self._guard = ReadWrite()  # a rebuild swaps the collection under the others
        self.vouched = False
        """Whether the files matched the checksums of the last clean close when this process
        took the index: they equal the rows then, but for what ``pending_index`` lists."""
        self.doubtful = False
        """Set when a write to the index failed: the next close does not vouch for it."""

    @property
    def owned(self) -> bool:
        return self.collection is not None

    def try_own(self) -> bool:
        """Take the lock and open the index if no other process holds it; a damaged index is
        set aside (derived data, never trusted) and the caller rebuilds it from the rows."""
        if self.collection is not None:
            return True
        fd = os.open(self._path / "index.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            index = self._path / "index"
            self.vouched = bool(index.exists() and vouched(index))
            if not self.vouched and not index_sound(index, self._embedder.dimension):
                aside = self._path / f"index.broken-{int(time.time())}"
                log.warning("vector index of %s is damaged; rebuilt from the rows", self._path)
                shutil.rmtree(aside, ignore_errors=True)
                index.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            self.client, self.collection = open_index(index, self._embedder)
            (index / SUMS).unlink(missing_ok=True)  # open: the index changes from here on
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._max_batch = max(1, self.client.get_max_batch_size())
        return True

    def rebuild(self, pages: Iterable[Mapping[str, Embedding]]) -> None:
        """The index made anew from ``pages`` of vectors (the rows'): what was deleted leaves
        its files, which Chroma's HNSW segment only marks. Other calls wait meanwhile."""
        with self._guard.write():
            self.client.close()
            index = self._path / "index"
            shutil.rmtree(index, ignore_errors=True)
            self.client, self.collection = open_index(index, self._embedder)
            for page in pages:
                self._upsert(page)

    def upsert(self, embeddings: Mapping[str, Embedding]) -> None:
        with self._guard.read():
            self._upsert(embeddings)

    def _upsert(self, embeddings: Mapping[str, Embedding]) -> None:
        ids = list(embeddings)
        for start in range(0, len(ids), self._max_batch):
            chunk = ids[start : start + self._max_batch]
            self.collection.upsert(
                ids=chunk,
                embeddings=np.stack([embeddings[i].vector for i in chunk]),
                metadatas=[{"h": embeddings[i].digest} for i in chunk],
            )

    def delete(self, ids: Sequence[str]) -> None:
        with self._guard.read():
            for start in range(0, len(ids), self._max_batch):
                self.collection.delete(ids=list(ids[start : start + self._max_batch]))

    def nearest(
        self, vector: np.ndarray, n: int, allowed: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        with self._guard.read():
            result = self.collection.query(
                query_embeddings=[np.asarray(vector, dtype=np.float32)],
                n_results=n,
                ids=None if allowed is None else list(allowed),
                include=["distances"],
            )
        return [
            (id_, 1.0 - float(dist))
            for id_, dist in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def digests(self) -> dict[str, str | None]:
        """Every vector's id and text digest, read a page at a time."""
        digests: dict[str, str | None] = {}
        while True:
            page = self.collection.get(include=["metadatas"], limit=PAGE, offset=len(digests))
            for id_, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
                digests[id_] = (meta or {}).get("h")
            if len(page["ids"]) < PAGE:
                return digests

    def diff(self, truth: Mapping[str, str | None]) -> tuple[list[str], list[str]]:
        """Against the rows' text digests (id -> digest): the indexed ids no row has
        (orphans), and the rows whose vector is missing or stale."""
        digests = self.digests()
        orphans = [id_ for id_ in digests if id_ not in truth]
        stale = [i for i, digest in truth.items() if digest is None or digests.get(i) != digest]
        return orphans, stale

    def close(self) -> None:
        """Close the client, vouch for the files the next open loads, release the lock."""
        if self.client is not None:
            self.client.close()
            try:
                if self.doubtful:
                    raise OSError("an index write failed in this process")
                write_sums(self._path / "index")
            except OSError as exc:
                log.warning("could not record the index checksums of %s: %s", self._path, exc)
        if self._fd is not None:
            os.close(self._fd)
