"""``forget``: by ids, by scope, by filter, with what was derived, and proven by scanning every
byte of the cube's folder after close for canary strings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cubemem import InvalidInputError, MemCube, NotFoundError
from cubemem.blocks import CoreMemory
from cubemem.extract import LLMExtractor
from cubemem.llm import Completion

CANARIES = [
    "zq7turnkestrel",
    "zq7factosprey",
    "zq7keyedmerlin",
    "zq7metaharrier",
    "zq7blockbuzzard",
    "zq7sessionkite",
]


class Facts:
    """A ``ChatClient`` extracting one fact per window (the protocol, not a mock)."""

    name = "facts"

    def complete(self, messages, *, schema=None) -> Completion:  # type: ignore[no-untyped-def]
        text = messages[-1]["content"]
        fact = "Ana's code word is zq7factosprey" if "zq7turnkestrel" in text else "Bob likes tea"
        return Completion(json.dumps({"facts": [{"text": fact, "source_ids": ["t1"]}]}))


def _bytes_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_forgetting_a_user_leaves_no_byte_of_them(tmp_path, embedder):
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder) as cube:
        cube.maintenance.extractor = LLMExtractor(Facts(), decide=False)
        cube.add_messages(
            [{"speaker": "Ana", "text": "my code word is zq7turnkestrel"}],
            scope={"user": "ana"},
            session="zq7sessionkite",
        )
        cube.add("Ana sings", scope={"user": "ana"}, metadata={"note": "zq7metaharrier"})
        cube.put(("prefs",), "ana-code", "zq7keyedmerlin", scope={"user": "ana"})
        CoreMemory(cube, user_id="ana").set("human", "Ana's bird is zq7blockbuzzard")
        edited = cube.add("Ana's first draft", scope={"user": "ana"})
        cube.update(edited.id, "Ana's second draft")
        cube.add_messages([{"speaker": "Bob", "text": "I like tea"}], scope={"user": "bob"})
        assert cube.count({"user": "ana"}) == 6
        before = _bytes_of(path)
        gone = cube.forget(user="ana")
        assert gone.count == 6 and cube.count({"user": "ana", "status": ["active", "deleted"]}) == 0
        assert cube.entities("Ana") == []
        assert "I like tea" in [r.content for r in cube.search("tea", filters={"user": "bob"})]
    assert any(c.encode() in before for c in CANARIES[:4])  # they were on disk before
    after = _bytes_of(path)
    assert [c for c in CANARIES if c.encode() in after] == []
    with MemCube.open(path, embedder=embedder) as cube:
        assert cube.count({"user": "bob"}) == 2  # Bob's turn and its fact, intact
        assert cube.search("tea", filters={"user": "bob"})[0].item.scope.user == "bob"


class CitesAll:
    """A ``ChatClient`` stating one fact that cites every turn of the window."""

    name = "cites-all"

    def complete(self, messages, *, schema=None) -> Completion:  # type: ignore[no-untyped-def]
        labels = sorted(set(re.findall(r"\[(t\d+)\]", messages[-1]["content"])))
        text = "Ana lives in Porto" if len(labels) > 1 else "Ana has a cat"
        return Completion(json.dumps({"facts": [{"text": text, "source_ids": labels}]}))


def test_derived_facts_go_and_shared_facts_lose_only_the_citation(cube):
    cube.maintenance.extractor = LLMExtractor(CitesAll(), decide=False)
    two = cube.add_messages(
        [
            {"speaker": "Ana", "text": "I moved to Porto", "id": "m1"},
            {"speaker": "Ana", "text": "Porto it is, since May", "id": "m2"},
        ],
        scope={"user": "ana"},
    )
    (cat,) = cube.add_messages(
        [{"speaker": "Ana", "text": "I got a cat", "id": "m3"}], scope={"user": "ana"}
    )
    facts = {m.content: m for m in cube.list({"user": "ana"}) if m.provenance.source == "extract"}
    assert set(facts) == {"Ana lives in Porto", "Ana has a cat"}
    gone = cube.forget([two[0].id, cat.id])
    assert sorted(gone.ids) == sorted([two[0].id, cat.id, facts["Ana has a cat"].id])
    assert gone.derived == [facts["Ana has a cat"].id]
    assert gone.uncited == [facts["Ana lives in Porto"].id]
    kept = cube.get(facts["Ana lives in Porto"].id)
    assert kept.provenance.source_ids == ["m2"]  # still supported by the turn that is left


def test_bad_selectors_are_refused_and_nothing_is_forgotten(cube):
    item = cube.add("Ana sings", scope={"user": "ana"})
    with pytest.raises(InvalidInputError, match="alone would erase"):
        cube.forget()
    with pytest.raises(NotFoundError, match="nothing was forgotten"):
        cube.forget([item.id, "0" * 32])
    with pytest.raises(InvalidInputError, match="non-empty"):
        cube.forget(user="")
    with pytest.raises(InvalidInputError, match="disagree"):
        cube.forget(user="ana", filters={"user": "bob"})
    assert cube.get(item.id).content == "Ana sings"


def test_a_change_of_fact_is_forgotten_with_its_past(cube):
    lisbon = cube.add("Ana lives in Lisbon", scope={"user": "ana"}, valid_from="2015-01-01")
    porto = cube.update(lisbon.id, "Ana lives in Porto", valid_from="2021-01-01")
    other = cube.add("Ana has a cat", scope={"user": "ana"})
    assert sorted(cube.forget([porto.id]).ids) == sorted([lisbon.id, porto.id])
    assert cube.count({"user": "ana", "status": ["active", "deleted", "archived"]}) == 1
    assert cube.get(other.id).content == "Ana has a cat"


def test_kill_9_in_the_middle_of_a_forget_is_finished_on_the_next_open(tmp_path):
    """The forget is journalled (ids only) before anything is erased; the process is killed
    as soon as the journal is there, with part of the memories purged; the next open finishes
    it. The child is killed once the first purge batch is committed (4,000 memories are eight
    batches); tried again should it have finished first."""
    import sqlite3
    import subprocess
    import sys
    import time

    from forget_child import hashed

    child = Path(__file__).with_name("forget_child.py")
    ANA = "SELECT count(*) FROM memories WHERE user_id = 'ana'"
    landed = 0
    for attempt in range(3):
        path = tmp_path / f"cube{attempt}"
        with MemCube.create(path, embedder=hashed) as cube:
            for start in range(0, 4000, 1000):
                cube.add(
                    [f"ana note {n}" for n in range(start, start + 1000)], scope={"user": "ana"}
                )
            bob = cube.add("Bob likes tea", scope={"user": "bob"})
        proc = subprocess.Popen(
            [sys.executable, str(child), str(path)], stdout=subprocess.PIPE, text=True
        )
        journal = path / "forgetting"
        deadline = time.monotonic() + 300
        left = 4000
        with sqlite3.connect(path / "memories.sqlite3", timeout=60) as db:
            while left == 4000 and proc.poll() is None:  # kill once the first batch is gone
                assert time.monotonic() < deadline, "the child never started its forget"
                time.sleep(0.005)
                if list(journal.glob("*.json")):
                    left = db.execute(ANA).fetchone()[0]
            proc.kill()
            proc.wait()
            left = db.execute(ANA).fetchone()[0]
        if 0 < left < 4000 and list(journal.glob("*.json")):
            landed += 1
        with MemCube.open(path, embedder=hashed) as cube:  # finishes the forget
            assert cube.count({"user": "ana", "status": ["active", "deleted", "archived"]}) == 0
            assert cube.get(bob.id).content == "Bob likes tea"
            assert [r.id for r in cube.search("Bob likes tea", k=1)] == [bob.id]
        assert list(journal.glob("*.json")) == []
        if landed:
            break
    assert landed, "no kill landed in the middle of the forget in three tries"


def test_a_write_racing_a_forget_is_forgotten_or_kept_whole(tmp_path, embedder):
    """Writes of the same user while a forget of that user runs (threads of one process): a
    memory acknowledged before the forget began is gone; one that lands during or after it is
    either gone or there whole — its row, its history, its vector and index entries — never a
    row without its vector or a vector without its row."""
    import threading
    import time

    acked: list[tuple[str, float]] = []
    started: list[float] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set() and n < 400:
            item = cube.add(f"ana race note {n}", scope={"user": "ana"})
            acked.append((item.id, time.monotonic()))
            n += 1

    cube = MemCube.create(tmp_path / "race", embedder=embedder)
    writer = threading.Thread(target=write)
    writer.start()
    while len(acked) < 20:
        time.sleep(0.01)
    started.append(time.monotonic())
    cube.forget(user="ana")
    time.sleep(0.2)
    stop.set()
    writer.join()
    before = [i for i, t in acked if t < started[0]]
    left = {m.id for m in cube.list({"user": "ana", "status": ["active", "deleted"]})}
    assert before and not left & set(before)
    for id_ in left:  # kept whole
        item = cube.get(id_)
        assert cube.history(id_)[-1].content == item.content
        hits = cube.search(item.content, k=3, filters={"user": "ana"})
        assert id_ in [h.id for h in hits]
    cube.close()
    with MemCube.open(tmp_path / "race", embedder=embedder) as again:
        assert not again.maintenance.last_repair.changed  # no row without its vector, no orphan
        assert {m.id for m in again.list({"user": "ana", "status": ["active", "deleted"]})} == left


def test_writes_queued_before_a_forget_are_forgotten_too(cube):
    """Background adds acknowledged before the forget are in the queue, not yet stored: the
    forget lets this process's workers store them first, and then takes them too."""
    queued = [
        cube.add(f"ana queued note {n}", scope={"user": "ana"}, wait=False) for n in range(40)
    ]
    gone = cube.forget(user="ana")
    assert set(queued) <= set(gone.ids)
    assert cube.scheduler.wait(timeout=30)
    assert cube.count({"user": "ana", "status": ["active", "deleted", "archived"]}) == 0


def test_the_vectors_of_a_forgotten_memory_leave_the_index_files(tmp_path):
    """Chroma's HNSW files keep a deleted vector (marked deleted) and its write-ahead log the
    vector as added: a forget rebuilds the index from the rows, so neither the vector as given
    nor as normalised is in any file of the cube afterwards — also once the HNSW segment was
    persisted (1,500 memories: past Chroma's sync threshold)."""
    import numpy as np
    from forget_child import hashed

    path = tmp_path / "cube"
    with MemCube.create(path, embedder=hashed) as cube:
        secret = cube.add("Ana's secret zq7vector", scope={"user": "ana"})
        cube.add([f"Bob note {n}" for n in range(1500)], scope={"user": "bob"})
        raw = np.asarray(hashed(["Ana's secret zq7vector"]), dtype=np.float32)[0]
        as_indexed = (raw / np.linalg.norm(raw)).astype(np.float32).tobytes()[:16]
        assert as_indexed in _bytes_of(path)  # in the HNSW files before
        cube.forget(user="ana")
        assert [r.id for r in cube.search("Bob note 7", k=1)] != [secret.id]
        assert cube.count({"user": "bob"}) == 1500
    on_disk = _bytes_of(path)
    for vector in (raw, raw / np.linalg.norm(raw)):
        assert vector.astype(np.float32).tobytes()[:16] not in on_disk
    with MemCube.open(path, embedder=hashed) as again:
        assert not again.maintenance.last_repair.changed
        assert len(again.search("Bob note 7", k=3)) == 3
