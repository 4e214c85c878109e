"""Issue 43, items 12-13: a search index file names the cube it belongs to (another cube's
is refused, even signed by the same user's key), and a killed writer's temporary file does
not outlive the next open or a forget."""

from __future__ import annotations

import os
import shutil

import pytest

from cubemem import MemCube
from cubemem.index_file import NAME


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_another_cubes_index_file_is_refused(tmp_path, embedder):
    with MemCube.create(tmp_path / "theirs", embedder=embedder) as theirs:
        theirs.add_messages([{"speaker": "Zoltan Quist", "text": "I keep bees in Oslo"}])
        theirs.add("Zoltan Quist keeps a canary called zq7foreign")
        theirs.search("bees", k=1)
    with MemCube.create(tmp_path / "mine", embedder=embedder) as mine:
        mine.add("Ana is allergic to peanuts")
        mine.add(["Ana walks", "Ana reads", "Ana cooks", "Ana swims"])  # its revision: ahead
        mine.search("peanuts", k=1)
    shutil.copy(tmp_path / "theirs" / NAME, tmp_path / "mine" / NAME)
    with MemCube.open(tmp_path / "mine", embedder=embedder) as mine:
        assert [e.name for e in mine.entities("Zoltan")] == []
        found = mine.search("canary zq7foreign", k=5)
        assert all(r.item.content.startswith("Ana") for r in found)
        assert len(found) == 5


def test_a_killed_writers_temporary_file_goes_at_open_and_at_a_forget(tmp_path, embedder):
    path = tmp_path / "c"
    with MemCube.create(path, embedder=embedder) as cube:
        fact = cube.add("Ana's pin is zq7tmpfile", scope={"user": "ana"})
        cube.search("pin", k=1)
    dead = path / f"{NAME}.999999999.abcd1234.tmp"  # no such process
    dead.write_bytes(b"zq7tmpfile")
    live = path / f"{NAME}.{os.getpid()}.abcd1234.tmp"  # a writer still at work
    live.write_bytes(b"zq7tmpfile")
    with MemCube.open(path, embedder=embedder) as cube:
        cube.search("pin", k=1)
        assert not dead.exists() and live.exists()
        cube.forget([fact.id])
        assert not live.exists()
    assert not list(path.glob(f"{NAME}.*.tmp"))
