"""The persisted search index (``cubemem.index_file``): a cube reopens from its file and
answers exactly as an index rebuilt from the rows; a stale file is brought up to date from the
change feed; a damaged, altered, foreign, other-format or other-revision file is refused and
rebuilt, never trusted; another process writing meanwhile loses nothing."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cubemem import MemCube
from cubemem import index_file as index_file_module
from cubemem.index_file import NAME, Keeper
from cubemem.index_vectors import Vectors
from cubemem.model import Filters, Message, Scope, utcnow
from cubemem.retrieve import HybridRetriever, RetrievalConfig

FACTS = [
    ("Ana adopted a grey tabby called Miso", "ana"),
    ("Ben plays the cello on Mondays", "ben"),
    ("Ana is allergic to peanuts", "ana"),
    ("Cleo rents a flat in Porto", "cleo"),
    ("Ben keeps a kayak at the harbour", "ben"),
    ("Item 4 of the list is the violin, item 40 the garden", "ana"),
]
QUERIES = ["what pet does Ana have?", "cello", "peanuts", "where does Cleo live", "item 4"]


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    """Each test signs with its own machine key (the real one is left alone)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def fill(cube: MemCube) -> None:
    """The test's memories, then a search (which builds the index and writes its file)."""
    for text, user in FACTS:
        cube.add(text, scope=Scope(user=user))
    cube.add_messages(
        [
            Message(speaker="Ben", content="Are you coming sailing with Ana?"),
            Message(speaker="Cleo", content="Yes, next Tuesday in Lisbon"),
        ],
        scope=Scope(user="cleo", session="s1"),
    )
    cube.search("warm", k=1)


def answers(cube: MemCube, retriever: HybridRetriever | None = None) -> list[list[tuple]]:
    chosen = retriever or cube.maintenance.context.retriever
    now = utcnow()
    out = []
    for filters in (Filters(), Filters(user="ana")):
        for query in QUERIES:
            hits = chosen.search(query, 5, filters, now)
            out.append([(h.id, round(h.score, 5), h.relevance) for h in hits])
    return out


def rebuilt(cube: MemCube) -> list[list[tuple]]:
    """What an index made from the rows alone answers (no file read or written)."""
    return answers(cube, HybridRetriever(cube.maintenance.store, cube.embedder))


def origin(cube: MemCube) -> str | None:
    cube.search("warm", k=1)
    return cube.maintenance.context.retriever.origin


def test_a_reopened_cube_loads_its_index_and_answers_as_a_rebuild(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
        assert origin(cube) == "rows"
        before = answers(cube)
    assert (tmp_path / "c" / NAME).exists()  # written after the build from every row
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert origin(again) == "file"
        assert answers(again) == before == rebuilt(again)
        # the loaded index keeps following writes, updates and purges
        extra = again.add("Ana moved to Lisbon in May", scope=Scope(user="ana"))
        first = again.search("peanuts", k=1)[0]
        again.update(first.id, "Ana is allergic to shellfish")
        again.delete(again.search("cello", k=1)[0].id, purge=True)
        assert answers(again) == rebuilt(again)
        assert extra.id in {h.id for h in again.search("Lisbon", k=3)}


def test_a_stale_file_is_brought_up_to_date_from_the_change_feed(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
        cube.search("warm", k=1)
    saved = json.loads(_header(tmp_path / "c" / NAME))["revision"]
    # a few writes: the next close leaves the file behind (not worth rewriting) ...
    with MemCube.open(tmp_path / "c", embedder=embedder) as cube:
        cube.add("Dan bought a telescope", scope=Scope(user="dan"))
        gone = cube.search("kayak harbour", k=1)[0].id
        cube.delete(gone, purge=True)
    assert json.loads(_header(tmp_path / "c" / NAME))["revision"] == saved
    # ... and the next open applies them on top of it
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert origin(again) == "file"
        assert answers(again) == rebuilt(again)
        assert gone not in {h.id for h in again.search("kayak", k=8)}
        assert again.search("telescope", k=1)[0].content == "Dan bought a telescope"


def test_a_file_far_behind_is_rewritten_at_close(tmp_path, embedder, monkeypatch):
    monkeypatch.setattr(Keeper, "MIN_STALE", 3)
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
        cube.search("warm", k=1)
    saved = json.loads(_header(tmp_path / "c" / NAME))["revision"]
    with MemCube.open(tmp_path / "c", embedder=embedder) as cube:
        cube.add(["one more", "and another", "and a third", "and a fourth"])
        cube.search("warm", k=1)
    assert json.loads(_header(tmp_path / "c" / NAME))["revision"] > saved


def _header(path) -> bytes:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[8:16])
    return data[16 : 16 + length]


def _flip(path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _body_start(path) -> int:
    (length,) = struct.unpack("<Q", path.read_bytes()[8:16])
    start = 16 + length
    return start + (-start % index_file_module.ALIGN)


@pytest.mark.parametrize(
    "damage",
    ["block", "body", "header", "truncated", "magic", "format", "foreign key", "empty"],
)
def test_a_damaged_or_foreign_file_is_refused_and_rebuilt(tmp_path, embedder, damage, monkeypatch):
    monkeypatch.setattr(index_file_module, "INBAND", 64)  # small arrays as blocks too
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
        before = answers(cube)
    path = tmp_path / "c" / NAME
    header = json.loads(_header(path))
    start = _body_start(path)
    if damage == "block":  # a vector or posting array: caught by its CRC
        offset, length, _ = header["blocks"][-1]
        _flip(path, start + offset + length // 2)
    elif damage == "body":  # the pickled objects: caught by the HMAC
        _flip(path, start + header["body"] // 2)
    elif damage == "header":
        raw = _header(path).replace(b'"revision": ', b'"revision": 0')
        data = path.read_bytes()
        path.write_bytes(data[:8] + struct.pack("<Q", len(raw)) + raw + data[16 + len(raw) :])
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: -(len(path.read_bytes()) // 3)])
    elif damage == "magic":
        _flip(path, 0)
    elif damage == "format":
        monkeypatch.setattr(index_file_module, "FORMAT", index_file_module.FORMAT + 1)
    elif damage == "foreign key":  # written on another machine (or by another user)
        shutil.rmtree(tmp_path / "cache")
    elif damage == "empty":
        path.write_bytes(b"")
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert origin(again) == "rows"
        assert answers(again) == before == rebuilt(again)
    with MemCube.open(tmp_path / "c", embedder=embedder) as third:  # the rebuild replaced it
        assert origin(third) == "file"
        assert answers(third) == before


def test_a_file_ahead_of_the_store_is_refused(tmp_path, embedder):
    """A store put back from an older copy with a newer index file beside it."""
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
    shutil.copytree(tmp_path / "c", tmp_path / "old")
    with MemCube.open(tmp_path / "c", embedder=embedder) as cube:
        for n in range(5):
            cube.add(f"later memory number {n}")
        cube.search("later", k=1)
        cube.maintenance.context.retriever._keeper.fresh = True  # force a write at close
    shutil.copy(tmp_path / "c" / NAME, tmp_path / "old" / NAME)
    with MemCube.open(tmp_path / "old", embedder=embedder) as old:
        assert origin(old) == "rows"
        assert answers(old) == rebuilt(old)
        assert "later memory number 1" not in {h.content for h in old.search("later", k=8)}


def test_other_settings_or_embedder_are_not_loaded(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
        cube.search("warm", k=1)
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        again.maintenance.retrieval = RetrievalConfig(short_tokens=False)
        assert origin(again) == "rows"
        assert answers(again) == answers(
            again,
            HybridRetriever(
                again.maintenance.store, again.embedder, RetrievalConfig(short_tokens=False)
            ),
        )


def test_another_process_writing_meanwhile_loses_nothing(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
    with MemCube.open(tmp_path / "c", embedder=embedder) as cube:
        assert origin(cube) == "file"
        child = textwrap.dedent(
            f"""
            import os
            os.environ["XDG_CACHE_HOME"] = {str(tmp_path / "cache")!r}
            from cubemem import MemCube
            from cubemem.index_file import Keeper
            Keeper.MIN_STALE = 1  # it writes the file too, at its close
            cube = MemCube.open({str(tmp_path / "c")!r})
            print(cube.add([f"the child wrote note {{n}}" for n in range(20)])[0].id)
            cube.search("note", k=3)
            cube.close()
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, timeout=300, check=True
        )
        first = out.stdout.strip().splitlines()[-1]
        assert first in {h.id for h in cube.search("the child wrote note 0", k=3)}
        cube.add("the parent wrote this after the child")
        assert answers(cube) == rebuilt(cube)
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert origin(again) == "file"
        assert answers(again) == rebuilt(again)
        assert again.count() == len(FACTS) + 2 + 20 + 1


def test_bfloat16_vectors_score_as_float32_does():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[7] + 0.3 * rng.standard_normal(384).astype(np.float32)
    query /= np.linalg.norm(query)
    held = Vectors(384)
    for slot in range(2000):
        held.set(slot, vectors[slot])
    loaded = Vectors.__new__(Vectors)  # as a persisted file gives it back: a base block ...
    loaded.__setstate__(held.__getstate__())
    for slot in range(2000, 3000):  # ... and a tail written since
        loaded.set(slot, vectors[slot])
    loaded.set(5, vectors[2999])  # a write to a row of the base
    want = vectors @ query
    want[5] = vectors[2999] @ query
    assert np.abs(loaded.scores(query, n=3000) - want).max() < 1e-3
    some = np.array([2500, 3, 5, 1999, 2000])
    assert np.abs(loaded.scores(query, some) - want[some]).max() < 1e-3
    assert np.argsort(-loaded.scores(query, n=3000))[0] == np.argsort(-want)[0]
    assert loaded.nbytes < vectors.nbytes


def test_a_postgresql_cube_reopens_from_its_file_too(tmp_path, embedder, new_postgres_database):
    """The rows and vectors live in PostgreSQL; the index file in the cube's folder, at the
    database's revision for the cube; another process's writes arrive by the change feed."""
    from cubemem.settings import Settings

    settings = Settings(store_url=new_postgres_database())
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=settings) as cube:
        fill(cube)
        before = answers(cube)
    with MemCube.open(tmp_path / "c", embedder=embedder, settings=settings) as again:
        assert origin(again) == "file"
        assert answers(again) == before == rebuilt(again)
        again.add("Ana moved to Lisbon in May", scope=Scope(user="ana"))
    with MemCube.open(tmp_path / "c", embedder=embedder, settings=settings) as third:
        assert origin(third) == "file"
        assert answers(third) == rebuilt(third)
        assert third.search("Lisbon May", k=1)[0].content == "Ana moved to Lisbon in May"


def test_a_forget_removes_the_file_and_no_older_index_writes_it_again(
    tmp_path, embedder, monkeypatch
):
    """The file and an index's vocabulary hold a memory's words: a forget removes the file,
    and a process whose index was built before the forget never writes one (the next
    build from the rows does)."""
    monkeypatch.setattr(Keeper, "MIN_STALE", 1)
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        fill(cube)
        cube.add("Ana's passport number is zq7passportowl", scope=Scope(user="ana"))
        cube.search("passport", k=1)
    with (
        MemCube.open(tmp_path / "c", embedder=embedder) as other,
        MemCube.open(tmp_path / "c", embedder=embedder) as forgetting,
    ):
        assert origin(other) == "file"
        forgetting.forget(user="ana")
        assert not (tmp_path / "c" / NAME).exists()
        other.add(["one more", "and another"])  # well behind now: it would write at close
        assert "zq7passportowl" not in {h.content for h in other.search("passport", k=8)}
    assert not (tmp_path / "c" / NAME).exists()  # the other's index predates the forget
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert origin(again) == "rows"  # built anew from the rows, then written
        assert answers(again) == rebuilt(again)
    assert b"zq7passportowl" not in (tmp_path / "c" / NAME).read_bytes()
