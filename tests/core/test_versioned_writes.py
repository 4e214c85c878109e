"""Versioned writes: concurrent edits of one memory never lose one, never pair a text with
another version's vector, never move a hit count backwards; a stale ``expected_version`` is a
``ConflictError`` that writes nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from cubemem import ConflictError, InvalidInputError, MemCube
from cubemem.index_texts import embed_items
from cubemem.model import address_id

NAMESPACE, KEY, TTL = ("team", "fact"), "fact", timedelta(hours=1)
CHILD = Path(__file__).resolve().parent / "edit_child.py"


def check_consistent(cube: MemCube, id_: str, acked: list[str]) -> None:
    """Every acknowledged text exactly once in the history, versions 1..n without gaps or
    repeats, and the row's (and the index's) vector is the one of its current text."""
    history = cube.history(id_)
    assert [v.version for v in history] == list(range(1, len(history) + 1))
    counts = Counter(v.content for v in history)
    assert all(counts[text] == 1 for text in acked), "an acknowledged edit is missing or doubled"
    current = cube.get(id_)
    assert current.version == history[-1].version and current.content == history[-1].content
    expected = embed_items(cube.embedder, [current])[id_].vector
    _, matrix = cube.maintenance.store.vectors([id_])
    np.testing.assert_allclose(matrix[0], expected, rtol=1e-4, atol=1e-5)
    ((found, score),) = cube.maintenance.store.nearest(expected, 1, [id_])
    assert found == id_ and score == pytest.approx(1.0, abs=1e-4), "the index holds a stale vector"


def test_threads_updating_putting_and_refreshing_one_memory_lose_nothing(cube):
    id_ = cube.put(NAMESPACE, KEY, "the first text of the shared fact", ttl=TTL).id
    acked: list[str] = ["the first text of the shared fact"]
    lock = threading.Lock()
    hits_seen: list[int] = []
    errors: list[BaseException] = []

    def writer(name: str, use_put: bool) -> None:
        try:
            for n in range(200):
                text = f"{name} edit {n:05d} of the shared fact"
                if use_put:
                    cube.put(NAMESPACE, KEY, text, ttl=TTL)
                else:
                    cube.update(id_, text)
                with lock:
                    acked.append(text)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(200):
                cube.refresh([id_])
                cube.search("shared fact", k=1)
                hits_seen.append(cube.get(id_).usage.hits)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=("updater", False)),
        threading.Thread(target=writer, args=("putter", True)),
        threading.Thread(target=reader),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(acked) == 401
    check_consistent(cube, id_, acked)
    assert len(cube.history(id_)) == 401
    assert hits_seen == sorted(hits_seen), "a hit count went backwards"
    assert cube.get(id_).usage.hits == 200


EDITS = 30
"""Edits (and searches) each process makes."""


@pytest.mark.slow
def test_two_processes_editing_one_memory_lose_nothing(tmp_path, embedder):
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder) as cube:
        cube.put(NAMESPACE, KEY, "the first text of the shared fact", ttl=TTL)
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(path), name, str(EDITS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("left", "right")
    ]
    acked = ["the first text of the shared fact"]
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        lines = out.splitlines()
        assert lines[0] == "READY" and lines[-1] == "DONE", err
        acked += [line.split(" ", 2)[2] for line in lines if line.startswith("ACK ")]
    assert len(acked) == 2 * EDITS + 1
    with MemCube.open(path, embedder=embedder) as cube:
        id_ = address_id(NAMESPACE, KEY)
        check_consistent(cube, id_, acked)
        assert len(cube.history(id_)) == 2 * EDITS + 1
        assert cube.get(id_).usage.hits == 2 * EDITS


def test_a_stale_expected_version_is_a_conflict_that_writes_nothing(cube, snapshot):
    item = cube.add("Ana works at Acme", scope={"user": "ana"})
    cube.update(item.id, "Ana works at Globex")  # another writer got there first
    before = snapshot(cube)
    with pytest.raises(ConflictError, match="not 1") as caught:
        cube.update(item.id, "Ana works at Initech", expected_version=1)
    assert caught.value.ids == [item.id]
    assert snapshot(cube) == before
    assert cube.update(item.id, "Ana works at Initech", expected_version=2).version == 3
    with pytest.raises(InvalidInputError, match="expected_version"):
        cube.update(item.id, "x", expected_version=0)


def test_of_two_racing_writers_with_expected_version_exactly_one_wins(cube):
    item = cube.add("the meeting is on Monday")
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def edit(n: int) -> None:
        start.wait()
        try:
            cube.update(item.id, f"the meeting moved to day {n:05d}", expected_version=1)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    history = cube.history(item.id)
    assert len(history) == 2 and cube.get(item.id).version == 2
    check_consistent(cube, item.id, [history[-1].content])


def test_delete_restore_and_purge_honour_expected_version(cube, snapshot):
    item = cube.add("Ana's locker code is 40921")
    cube.update(item.id, "Ana's locker code is 77310")
    before = snapshot(cube)
    for stale in (
        lambda: cube.delete(item.id, expected_version=1),
        lambda: cube.delete(item.id, purge=True, expected_version=1),
        lambda: cube.restore(item.id, expected_version=1),
    ):
        with pytest.raises(ConflictError):
            stale()
        assert snapshot(cube) == before
    cube.delete(item.id, expected_version=2)
    assert cube.restore(item.id, expected_version=3).version == 4
