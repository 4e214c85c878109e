"""Bad input raises a typed error that says what to do, and the cube stays exactly as it was."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from cubemem import (
    CubeBusyError,
    IncompatibleCubeError,
    InvalidFilterError,
    InvalidInputError,
    MemCube,
    NotACubeError,
    NotFoundError,
    Settings,
)


@pytest.fixture
def filled(cube):
    cube.add(["Ana likes tea", "Ben likes coffee"], scope={"user": "ana"}, tags=["drinks"])
    item = cube.add("Miso is a grey tabby")
    cube.update(item.id, "Miso is a grey tabby cat")
    return cube


BAD_CALLS = {
    "empty": lambda c: c.add(""),
    "whitespace": lambda c: c.add("  \n\t "),
    "non-string": lambda c: c.add(42),
    "bytes": lambda c: c.add(b"bytes are not text"),
    "none in list": lambda c: c.add(["fine", None]),
    "lone surrogate": lambda c: c.add("broken \udc80 text"),
    "one bad item in a batch": lambda c: c.add(["good one", "", "another good one"]),
    "bad tags": lambda c: c.add("x", tags="not-a-list"),
    "empty tag": lambda c: c.add("x", tags=[""]),
    "nested metadata": lambda c: c.add("x", metadata={"a": {"b": 1}}),
    "nan metadata": lambda c: c.add("x", metadata={"a": float("nan")}),
    "unknown scope key": lambda c: c.add("x", scope={"team": "a"}),
    "bad message": lambda c: c.add_messages([{"speaker": "Ana"}]),
    "message with unknown key": lambda c: c.add_messages([{"speaker": "A", "text": "x", "y": 1}]),
    "messages not a list": lambda c: c.add_messages("hello"),
    "bad timestamp": lambda c: c.add_messages([{"speaker": "A", "text": "x"}], timestamp="soon"),
    "k zero": lambda c: c.search("tea", k=0),
    "k negative": lambda c: c.search("tea", k=-3),
    "k bool": lambda c: c.search("tea", k=True),
    "empty query": lambda c: c.search(" "),
    "unknown filter key": lambda c: c.search("tea", filters={"colour": "red"}),
    "bad filter value": lambda c: c.search("tea", filters={"status": "gone"}),
    "filters not a dict": lambda c: c.search("tea", filters=["user"]),
    "list unknown filter": lambda c: c.list({"colour": "red"}),
    "list zero limit": lambda c: c.list(limit=0),
    "update nothing": lambda c: c.update(c.list()[0].id),
    "update empty text": lambda c: c.update(c.list()[0].id, ""),
    "update unknown id": lambda c: c.update("nope", "text"),
    "delete unknown id": lambda c: c.delete("nope"),
    "get empty id": lambda c: c.get(""),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_and_changes_nothing(filled, snapshot, call):
    before = snapshot(filled)
    with pytest.raises((InvalidInputError, NotFoundError)) as err:
        call(filled)
    assert str(err.value)
    assert snapshot(filled) == before


def test_unknown_filter_names_the_allowed_keys(cube):
    with pytest.raises(InvalidFilterError, match="allowed keys: user, agent, session"):
        cube.search("x", filters={"usr": "ana"})


def test_content_over_the_size_limit(tmp_path, embedder, snapshot):
    cube = MemCube.create(
        tmp_path / "c", embedder=embedder, settings=Settings(max_content_bytes=64)
    )
    cube.add("small enough")
    before = snapshot(cube)
    with pytest.raises(InvalidInputError, match="over the limit of 64"):
        cube.add("x" * 65)
    assert snapshot(cube) == before


def test_default_size_limit_is_one_mebibyte(cube):
    with pytest.raises(InvalidInputError, match="1048576"):
        cube.add("a" * ((1 << 20) + 1))


class WrongShape:
    """An embedder that claims MiniLM's name and dimension but returns short vectors."""

    def __init__(self, inner):
        self._inner = inner
        self.name = inner.name
        self.dimension = inner.dimension

    def embed_documents(self, texts):
        return self._inner.embed_documents(texts)[:, :10]

    def embed_query(self, text):
        return self._inner.embed_query(text)[:10]


def test_wrong_dimension_vectors_are_refused(filled, embedder, snapshot):
    before = snapshot(filled)
    path = filled.path
    filled.close()
    liar = MemCube.open(path, embedder=WrongShape(embedder))
    with pytest.raises(InvalidInputError, match="shape"):
        liar.add(["one", "two"])
    assert snapshot(liar) == before
    liar.close()


class Renamed:
    """A real embedder reporting another model name or dimension."""

    def __init__(self, inner, name, dimension):
        self._inner, self.name, self.dimension = inner, name, dimension

    def embed_documents(self, texts):
        return self._inner.embed_documents(texts)

    def embed_query(self, text):
        return np.asarray(self._inner.embed_query(text))


@pytest.mark.parametrize(("name", "dimension"), [("other/model", 384), (None, 768)])
def test_other_embedder_is_refused(filled, embedder, snapshot, name, dimension):
    before = snapshot(filled)
    path = filled.path
    filled.close()
    other = Renamed(embedder, name or embedder.name, dimension)
    with pytest.raises(IncompatibleCubeError, match="built with embedder"):
        MemCube.open(path, embedder=other)
    with MemCube.open(path, embedder=embedder) as again:
        assert snapshot(again) == before


def test_path_that_is_not_a_cube(tmp_path, embedder):
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotACubeError, match=r"MemCube\.create"):
        MemCube.open(tmp_path / "plain", embedder=embedder)
    with pytest.raises(NotACubeError):
        MemCube.open(tmp_path / "missing", embedder=embedder)


def test_cube_of_a_newer_format(filled, embedder, snapshot):
    before = snapshot(filled)
    path = filled.path
    filled.close()
    manifest = json.loads((path / "cube.json").read_text())
    original = dict(manifest)
    manifest["format_version"] = 99
    (path / "cube.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleCubeError, match="upgrade cubemem"):
        MemCube.open(path, embedder=embedder)
    (path / "cube.json").write_text(json.dumps(original))
    with MemCube.open(path, embedder=embedder) as again:
        assert snapshot(again) == before


def test_corrupt_manifest(filled, embedder):
    path = filled.path
    filled.close()
    (path / "cube.json").write_text("{not json")
    with pytest.raises(IncompatibleCubeError, match="unreadable"):
        MemCube.open(path, embedder=embedder)


def test_create_refuses_an_existing_cube(filled, embedder, snapshot):
    before = snapshot(filled)
    with pytest.raises(InvalidInputError, match=r"MemCube\.open"):
        MemCube.create(filled.path, embedder=embedder)
    assert snapshot(filled) == before


def test_import_of_a_broken_archive(tmp_path, embedder):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip")
    with pytest.raises(IncompatibleCubeError, match="not a cubemem archive"):
        MemCube.import_(bad, tmp_path / "c", embedder=embedder)
    assert not (tmp_path / "c").exists()
    with pytest.raises(NotFoundError):
        MemCube.import_(tmp_path / "missing.zip", tmp_path / "c", embedder=embedder)


def test_query_errors_name_the_query(cube):
    with pytest.raises(InvalidInputError, match="search query is empty"):
        cube.search("   ")


def test_a_write_blocked_by_another_writer_is_a_typed_error(tmp_path, embedder, snapshot):
    path = tmp_path / "busy"
    settings = Settings(busy_timeout_s=0.2)
    with MemCube.create(path, embedder=embedder, settings=settings) as cube:
        first = cube.add("Ana likes tea")
        before = snapshot(cube)
        other = sqlite3.connect(path / "memories.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            with pytest.raises(CubeBusyError, match="busy_timeout_s"):
                cube.add("Ben likes coffee")
            with pytest.raises(CubeBusyError):
                cube.update(first.id, "Ana likes green tea")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert snapshot(cube) == before
        assert cube.add("Ben likes coffee").content == "Ben likes coffee"


def test_search_answers_while_another_writer_holds_the_lock(tmp_path, embedder):
    path = tmp_path / "busy"
    with MemCube.create(path, embedder=embedder, settings=Settings(busy_timeout_s=0.2)) as cube:
        cube.add("Ana likes tea")
        other = sqlite3.connect(path / "memories.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            hits = cube.search("what does Ana drink?", k=1)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert hits[0].item.content == "Ana likes tea"
