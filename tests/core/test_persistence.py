"""Durability: reopen, crash repair between the SQLite and index writes, export/import, compose."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from cubemem import IncompatibleCubeError, MemCube, compose
from cubemem.model import Filters
from cubemem.store.embedded import SUMS

EVERYTHING = Filters.everything()


def _index(path):
    return chromadb.PersistentClient(
        path=str(path / "index"), settings=ChromaSettings(anonymized_telemetry=False)
    )


def _indexed_ids(path) -> set[str]:
    client = _index(path)
    try:
        return set(client.get_collection("memories").get(include=[])["ids"])
    finally:
        client.close()


def _row_ids(path) -> set[str]:
    with sqlite3.connect(path / "memories.sqlite3") as db:
        return {row[0] for row in db.execute("SELECT id FROM memories")}


def test_reopen_keeps_everything(tmp_path, embedder, snapshot):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        item = cube.add("Ana's cat is Miso", scope={"user": "ana"}, tags=["pets"])
        cube.update(item.id, "Ana's cat is Miso, a grey tabby")
        cube.add_messages([{"speaker": "Ben", "text": "I moved to La Palma", "id": "m1"}])
        cube.delete(cube.add("forget me").id)
        hits_before = [h.id for h in cube.search("cat", k=3)]
        before = snapshot(cube)
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert not again.maintenance.last_repair.changed
        assert snapshot(again) == before
        assert [h.id for h in again.search("cat", k=3)] == hits_before


def test_rows_without_vectors_are_reindexed_on_open(tmp_path, embedder):
    """A crash after the SQLite commit and before the index write leaves rows unindexed."""
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        items = cube.add(["the boat is blue", "the house is red", "the car is green"])
    client = _index(tmp_path / "c")
    client.get_collection("memories").delete(ids=[items[0].id, items[2].id])
    client.close()
    (tmp_path / "c" / "index" / SUMS).unlink()  # a crash: no clean close vouched for the files
    assert _indexed_ids(tmp_path / "c") == {items[1].id}
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert sorted(again.maintenance.last_repair.reindexed) == sorted([items[0].id, items[2].id])
        assert again.search("what colour is the boat?", k=1)[0].id == items[0].id
    assert _indexed_ids(tmp_path / "c") == {i.id for i in items}


def test_stale_vector_after_an_interrupted_update_is_replaced(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        item = cube.add("the meeting is on Monday")
        collection = cube.maintenance.store._index.collection
        old = collection.get(ids=[item.id], include=["embeddings", "metadatas"])
        cube.update(item.id, "the meeting moved to Thursday")
        # Put the old vector back, as if the update's index write never happened.
        collection.upsert(ids=[item.id], embeddings=old["embeddings"], metadatas=old["metadatas"])
    # as a crash between the row's commit and the index write leaves it: no clean close vouched
    # for the files (a failed index write in a live process withholds the vouching too)
    (tmp_path / "c" / "index" / SUMS).unlink()
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert again.maintenance.last_repair.reindexed == [item.id]
        hit = again.search("Thursday", k=1)[0]
        assert hit.id == item.id and hit.dense_score > 0.3


def test_orphan_vectors_are_removed_on_open(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        keep, gone = cube.add(["keep this", "row lost"])
    with sqlite3.connect(tmp_path / "c" / "memories.sqlite3") as db:
        db.execute("DELETE FROM memories WHERE id = ?", (gone.id,))
    # a purge whose index delete never ran (the process died between the two): no clean
    # close vouched for the files, so the open compares every row with the index
    (tmp_path / "c" / "index" / SUMS).unlink()
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert again.maintenance.last_repair.orphans_removed == [gone.id]
        assert [h.id for h in again.search("row lost", k=5)] == [keep.id]
    assert _indexed_ids(tmp_path / "c") == {keep.id}


def test_a_failed_index_write_keeps_the_close_from_vouching(tmp_path, embedder, monkeypatch):
    """The open after a clean close trusts the index files (no row-by-row comparison); an
    index delete that failed in the live process withholds that trust, so the next open
    compares every row and drops the orphaned vector."""
    from cubemem.store.chroma_files import ChromaIndex

    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        keep, gone = cube.add(["keep this", "purge this"])
        with monkeypatch.context() as patched:
            patched.setattr(ChromaIndex, "delete", lambda self, ids: 1 / 0)
            cube.delete(gone.id, purge=True)  # the rows go; the index delete fails
    assert not (tmp_path / "c" / "index" / SUMS).exists()
    assert _indexed_ids(tmp_path / "c") == {keep.id, gone.id}
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert again.maintenance.last_repair.orphans_removed == [gone.id]
    assert _indexed_ids(tmp_path / "c") == {keep.id}
    with MemCube.open(tmp_path / "c", embedder=embedder) as third:  # vouched: nothing to do
        assert third.maintenance.last_repair.orphans_removed == []


def test_sums_of_an_earlier_version_still_vouch_for_the_index(tmp_path, embedder, monkeypatch):
    """Checksums written before 0.5 (blake2b) are read: the index is trusted, not probed."""
    from cubemem.store import chroma_files

    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        item = cube.add("the harbour office moved to Tuesday")
    index = tmp_path / "c" / "index"
    (index / SUMS).write_text(json.dumps(chroma_files._blake2b_sums(index)), encoding="utf-8")
    monkeypatch.setattr(chroma_files.subprocess, "run", lambda *a, **k: 1 / 0)  # no probe
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert again.search("harbour office", k=1)[0].id == item.id
    assert json.loads((index / SUMS).read_text())["algorithm"] == "crc32"  # rewritten at close


CHILD = textwrap.dedent(
    """
    import sys
    from cubemem import MemCube
    cube = MemCube.open(sys.argv[1])
    with open(sys.argv[2], "a") as acked:
        for batch in range(10_000):
            items = cube.add([f"memory {batch}-{i} about topic {batch % 7}" for i in range(20)])
            acked.write("\\n".join(item.id for item in items) + "\\n")
            acked.flush()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(2))
def test_kill_minus_nine_loses_no_acknowledged_write(tmp_path, embedder, round_):
    path, acked = tmp_path / "c", tmp_path / "acked.txt"
    MemCube.create(path, embedder=embedder).close()
    acked.touch()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(acked)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        target = 60 + 40 * round_
        while len(acked.read_text().split()) < target:
            assert child.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.05)
        time.sleep(0.01 * (round_ + 1))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    acknowledged = set(acked.read_text().split())
    with MemCube.open(path, embedder=embedder) as cube:
        stored = {item.id for item in cube.iter(EVERYTHING)}
        assert acknowledged <= stored
        assert _row_ids(path) == stored
        assert len(stored) % 20 == 0, "a batch was half-written"
    assert _indexed_ids(path) == stored


def _key(item):
    return item.model_dump(exclude={"cube"})


def test_compose_keeps_provenance_and_lineage(tmp_path, embedder):
    a = MemCube.create(tmp_path / "a", embedder=embedder)
    b = MemCube.create(tmp_path / "b", embedder=embedder)
    first = a.add("Ana likes tea", scope={"user": "ana"})
    a.update(first.id, "Ana likes green tea")
    b.add_messages([{"speaker": "Ben", "text": "I got the job in La Palma", "id": "D2:5"}])
    merged = compose([a, b], tmp_path / "m", name="merged")
    assert merged.count() == 2
    got = merged.get(first.id)
    assert got.cube == merged.id and got.provenance.origin_cube == a.id
    assert [v.content for v in merged.history(first.id)] == ["Ana likes tea", "Ana likes green tea"]
    ben = merged.search("where did Ben get a job?", k=1)[0]
    assert ben.provenance.source_ids == ["D2:5"] and ben.provenance.origin_cube == b.id
    for cube in (a, b, merged):
        cube.close()


def test_compose_refuses_cubes_of_different_embedders(tmp_path, embedder):
    a = MemCube.create(tmp_path / "a", embedder=embedder)
    b = MemCube.create(tmp_path / "b", embedder=embedder)
    manifest = json.loads((b.path / "cube.json").read_text())
    b.close()
    manifest["embedder"] = "other/model"
    (tmp_path / "b" / "cube.json").write_text(json.dumps(manifest))

    class Other:
        name, dimension = "other/model", 384
        embed_documents = staticmethod(embedder.embed_documents)
        embed_query = staticmethod(embedder.embed_query)

    b = MemCube.open(tmp_path / "b", embedder=Other())
    with pytest.raises(IncompatibleCubeError):
        compose([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists()
