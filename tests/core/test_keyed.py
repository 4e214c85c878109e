"""Keyed memories: ``put``/``lookup``/``refresh``/``namespaces`` and value filters."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from cubemem import InvalidFilterError, InvalidInputError, MemCube
from cubemem.model import address_id


def test_put_is_an_upsert_with_history(cube):
    first = cube.put(("memories", "ana"), "diet", "Ana is vegetarian", value={"v": 1})
    assert first.id == address_id(("memories", "ana"), "diet")
    second = cube.put(("memories", "ana"), "diet", "Ana is vegan", value={"v": 2})
    assert (second.id, second.version) == (first.id, 2)
    assert [v.value for v in cube.history(first.id)] == [{"v": 1}, {"v": 2}]
    same = cube.put(("memories", "ana"), "diet", "Ana is vegan", value={"v": 2})
    assert same.version == 2  # an identical put writes no new version
    assert cube.search("vegan", k=1)[0].id == first.id


def test_put_revives_a_deleted_key(cube):
    item = cube.put(("n",), "k", "first text")
    cube.delete(item.id)
    assert cube.lookup(("n",), "k") is None
    revived = cube.put(("n",), "k", "second text")
    assert revived.status == "active" and revived.version == 3  # the delete is a version too
    assert [v.status for v in cube.history(item.id)] == ["active", "deleted", "active"]
    assert cube.lookup(("n",), "k").content == "second text"


def test_namespaces_and_prefix_filters(cube):
    cube.put(("a", "b"), "1", "one")
    cube.put(("a", "bc"), "2", "two")
    cube.put(("ab",), "3", "three")
    cube.add("not keyed")
    assert cube.namespaces() == [("a", "b"), ("a", "bc"), ("ab",)]
    assert cube.namespaces(("a",)) == [("a", "b"), ("a", "bc")]
    assert [m.content for m in cube.list({"namespace": ("a", "b")})] == ["one"]
    assert [m.content for m in cube.list({"namespace": ()})] == ["one", "two", "three"]
    assert cube.count() == 4


def test_ttl_is_sliding(cube):
    item = cube.put(("s",), "k", "short lived", ttl=timedelta(seconds=1))
    time.sleep(0.6)
    cube.refresh([item.id])
    time.sleep(0.6)
    assert cube.lookup(("s",), "k") is not None
    time.sleep(0.6)
    assert cube.lookup(("s",), "k") is None
    assert cube.search("short lived", k=5) == []
    assert cube.get(item.id).status == "active"  # expiry hides; only purge deletes


@pytest.mark.parametrize(
    ("value_filter", "expected"),
    [
        ({"n": 2}, ["b"]),
        ({"n": {"$gte": 2}}, ["b", "c"]),
        ({"n": {"$ne": 2}}, ["a", "c"]),
        ({"tags": ["x", "y"]}, ["a"]),
        ({"inner": {"deep": "yes"}}, ["c"]),
        ({"missing": None}, ["a", "b", "c"]),
        ({"flag": True}, ["b"]),
    ],
)
def test_value_filters(cube, value_filter, expected):
    cube.put(("d",), "a", "alpha", value={"n": 1, "tags": ["x", "y"]})
    cube.put(("d",), "b", "beta", value={"n": 2, "flag": True})
    cube.put(("d",), "c", "gamma", value={"n": 3, "inner": {"deep": "yes"}})
    assert [m.key for m in cube.list({"value": value_filter})] == expected
    assert {
        r.item.key for r in cube.search("alpha beta gamma", k=5, filters={"value": value_filter})
    } == set(expected)


@pytest.mark.parametrize(
    "bad",
    [{"n": {"$regex": "x"}}, {"n": {"$gt": "3"}}, {'a"b': 1}, {"n": {"$eq": object()}}],
)
def test_bad_value_filters(cube, bad):
    cube.put(("d",), "a", "alpha", value={"n": 1})
    with pytest.raises(InvalidFilterError):
        cube.list({"value": bad})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((("a",), "k", ""), {}),
        (((), "k", "text"), {}),
        (("a", "k", "text"), {}),
        ((("a", ""), "k", "text"), {}),
        ((("a\x1fb",), "k", "text"), {}),
        ((("a",), "", "text"), {}),
        ((("a",), "k", "text"), {"value": {"x": float("nan")}}),
        ((("a",), "k", "text"), {"value": ["not", "a", "dict"]}),
        ((("a",), "k", "text"), {"ttl": timedelta(0)}),
        ((("a",), "k", "text"), {"ttl": 5}),
    ],
)
def test_bad_puts_change_nothing(cube, snapshot, args, kwargs):
    cube.put(("a",), "k", "original", value={"x": 1})
    before = snapshot(cube)
    with pytest.raises(InvalidInputError):
        cube.put(*args, **kwargs)
    assert snapshot(cube) == before


def test_keyed_memories_round_trip_export(cube, tmp_path, embedder):
    cube.put(
        ("memories", "ana"), "k", "Ana's cat is Miso", value={"text": "Miso"}, ttl=timedelta(days=1)
    )
    archive = cube.export(tmp_path / "cube.zip")
    with MemCube.import_(archive, tmp_path / "copy", embedder=embedder) as copy:
        item = copy.lookup(("memories", "ana"), "k")
        assert item.value == {"text": "Miso"} and item.ttl == timedelta(days=1)
        assert copy.namespaces() == [("memories", "ana")]


@pytest.mark.parametrize(
    ("metadata_filter", "expected"),
    [
        ({"lang": "pt"}, ["b"]),
        ({"year": {"$gte": 2021}}, ["b", "c"]),
        ({"lang": {"$in": ["pt", "de"]}}, ["b", "c"]),
        ({"lang": {"$nin": ["pt"]}}, ["a", "c", "d"]),
        ({"lang": {"$ne": "en"}}, ["b", "c", "d"]),
        ({"lang": None}, ["d"]),
    ],
)
def test_metadata_filter_operators(cube, metadata_filter, expected):
    cube.add("a", metadata={"lang": "en", "year": 2019})
    cube.add("b", metadata={"lang": "pt", "year": 2021})
    cube.add("c", metadata={"lang": "de", "year": 2024})
    cube.add("d")
    assert [m.content for m in cube.list({"metadata": metadata_filter})] == expected


@pytest.mark.parametrize("bad", [{"x": {"$in": []}}, {"x": {"$in": "pt"}}, {"x": {"$like": "p%"}}])
def test_bad_metadata_filters(cube, bad):
    with pytest.raises(InvalidFilterError):
        cube.list({"metadata": bad})
