"""The embedded engine's Chroma folder: checksums of a cleanly closed index, the probe that
tells a sound index from a damaged one, and opening it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cubemem.embed import Embedder
from cubemem.errors import BackendUnavailableError

log = logging.getLogger(__name__)

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


def file_sums(path: Path) -> dict[str, str]:
    sums = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != SUMS):
        digest = hashlib.blake2b(digest_size=16)
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        sums[str(file.relative_to(path))] = digest.hexdigest()
    return sums


def write_sums(path: Path) -> None:
    if path.is_dir():
        tmp = path / (SUMS + ".tmp")
        tmp.write_text(json.dumps(file_sums(path)), encoding="utf-8")
        os.replace(tmp, path / SUMS)


def index_sound(path: Path, dimension: int) -> bool:
    """Whether the index files can be loaded: they match the checksums of the last clean
    close, or — after a crash, when there are none — a child process loads and queries them
    without failing (a damaged HNSW file can crash the process that loads it)."""
    if not path.exists():
        return True
    try:
        recorded = json.loads((path / SUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, dict):
        return recorded == file_sums(path)
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
