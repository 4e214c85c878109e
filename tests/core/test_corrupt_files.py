"""Damaged files: the vector index is derived data, rebuilt from the rows when its files fail
their check (never a crash, never an untyped error); a missing or unreadable rows database is
``CubeCorruptError`` and nothing is deleted."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import pytest

from cubemem import CubeCorruptError, MemCube
from cubemem.bench.scale import RandomEmbedder
from cubemem.store.embedded import SUMS

HNSW_FILES = ["data_level0.bin", "header.bin", "length.bin", "link_lists.bin"]
COUNT = 1500  # past Chroma's sync threshold, so the HNSW files are on disk


@pytest.fixture
def built(tmp_path) -> Path:
    embedder = RandomEmbedder()
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        cube.add([f"memory {i} about topic {i % 13}" for i in range(COUNT)])
    return tmp_path / "cube"


def hnsw_file(cube: Path, name: str) -> Path:
    (found,) = list((cube / "index").glob(f"*/{name}"))
    return found


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_whole(path: Path) -> None:
    with MemCube.open(path, embedder=RandomEmbedder()) as cube:
        assert cube.count() == COUNT
        assert cube.maintenance.store.owns_index
        assert (
            cube.maintenance.store._index.collection.count() == COUNT
        )  # the index holds every row again
        vector = np.asarray(cube.embedder.embed_query("memory 7 about topic 7"))
        assert len(cube.maintenance.store.nearest(vector, 5, None)) == 5
        hit = cube.search("memory 1234 about topic 12", k=1)[0]
        assert hit.content == "memory 1234 about topic 12"


@pytest.mark.parametrize("name", HNSW_FILES)
@pytest.mark.parametrize("damage", ["random", "truncated"])
@pytest.mark.parametrize("closed", ["clean", "crashed"], ids=["after-close", "after-crash"])
def test_a_damaged_index_is_rebuilt_from_the_rows(built, name, damage, closed):
    target = hnsw_file(built, name)
    size = target.stat().st_size
    if damage == "random":
        target.write_bytes(random.Random(7).randbytes(size))
    else:
        target.write_bytes(target.read_bytes()[: size // 3])
    if closed == "crashed":  # no checksums from a clean close: a child process probes the files
        (built / "index" / SUMS).unlink()
    assert_whole(built)


def test_a_missing_rows_database_is_reported_and_nothing_is_deleted(built):
    before = fingerprint(built / "index")
    os.remove(built / "memories.sqlite3")
    with pytest.raises(CubeCorruptError, match=r"memories\.sqlite3"):
        MemCube.open(built, embedder=RandomEmbedder())
    assert fingerprint(built / "index") == before


def test_an_unreadable_rows_database_is_reported(built):
    (built / "memories.sqlite3").write_bytes(b"not a database" * 100)
    for extra in ("memories.sqlite3-wal", "memories.sqlite3-shm"):
        (built / extra).unlink(missing_ok=True)
    with pytest.raises(CubeCorruptError, match="not a readable database"):
        MemCube.open(built, embedder=RandomEmbedder())
