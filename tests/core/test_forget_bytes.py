"""Issue 43, item 7: a forgotten row leaves no copy in the SQLite file's free space (b-tree
rebalancing left whole rows there despite ``secure_delete``), nor in its write-ahead log."""

from __future__ import annotations

import hashlib

import numpy as np

from cubemem import MemCube
from cubemem.embed import FunctionEmbedder


def _vectors(texts: list[str]) -> np.ndarray:
    """Cheap stand-in vectors of MiniLM's size (rows with overflow pages, as in a real cube;
    the model itself would take minutes for 4,000 memories)."""
    rows = [np.resize(np.frombuffer(hashlib.sha512(t.encode()).digest(), np.uint8), 384)
            for t in texts]  # fmt: skip
    return np.asarray(rows, np.float32) - 127.5


def test_forgotten_rows_leave_no_copy_in_the_database_file(tmp_path):
    """The issue's reproduction: 2,000 + 2,000 memories written in the background, a search,
    ``forget(user="ana")``, close: on main one whole forgotten row stayed readable."""
    embedder = FunctionEmbedder(_vectors, name="sha-384", dimension=384)
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder) as cube:
        for n in range(2000):
            cube.add(f"ana's note {n} CNRYK{n:04d}", scope={"user": "ana"}, wait=False)
            cube.add(f"bob's note {n} about the weather", scope={"user": "bob"}, wait=False)
        assert cube.scheduler.wait(timeout=300)
        cube.search("ana's note 12", k=20)  # usage counters rewrite rows in place
        assert cube.forget(user="ana").count == 2000
    left = b"".join(p.read_bytes() for p in path.glob("memories.sqlite3*"))
    assert b"CNRYK" not in left
    assert b"about the weather" in left  # the scan reads the file: bob's rows are there
