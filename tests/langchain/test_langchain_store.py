"""One behaviour suite, two stores: LangGraph's reference ``InMemoryStore`` and ``MemCubeStore``.

Where a test only runs on ``MemCubeStore`` it is a documented difference (docs/langchain.md):
TTL (the reference store has none), versions and undoable deletes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from langgraph.store.base import BaseStore, Item, SearchItem
from langgraph.store.memory import InMemoryStore

from cubemem import Filters, IncompatibleCubeError, MemCube
from cubemem_langchain import MemCubeStore

DOCS = {
    "python": "Python is a programming language with dynamic typing",
    "typescript": "TypeScript adds static types to JavaScript",
    "bread": "Sourdough bread needs a starter and a long proof",
    "tea": "Green tea is brewed at eighty degrees for two minutes",
}


@pytest.fixture(params=["reference", "memcube"])
def store(request, tmp_path, embedder, lc_embeddings) -> BaseStore:
    if request.param == "reference":
        return InMemoryStore(index={"dims": 384, "embed": lc_embeddings, "fields": ["text"]})
    cube = MemCube.create(tmp_path / "cube", embedder=embedder)
    request.addfinalizer(cube.close)
    return MemCubeStore(cube, fields=["text"])


@pytest.fixture
def memcube_store(tmp_path, embedder):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        yield MemCubeStore(cube, fields=["text"])


def fill(store: BaseStore) -> None:
    for i, (key, text) in enumerate(DOCS.items()):
        kind = "code" if key in ("python", "typescript") else "food"
        store.put(("docs", kind), key, {"text": text, "rank": i, "kind": kind, "meta": {"n": i}})
    store.put(("notes",), "n1", {"text": "call the plumber", "rank": 9, "kind": "todo"})


def keys(items: list[Item]) -> list[str]:
    return [i.key for i in items]


def test_put_get_roundtrip(store):
    value = {"text": "likes green tea", "nested": {"a": [1, 2, {"b": None}]}, "flag": True}
    store.put(("memories", "ana"), "pref", value)
    item = store.get(("memories", "ana"), "pref")
    assert isinstance(item, Item)
    assert item.value == value
    assert (item.namespace, item.key) == (("memories", "ana"), "pref")
    assert item.created_at <= item.updated_at
    assert store.get(("memories", "ana"), "missing") is None
    assert store.get(("memories", "bob"), "pref") is None


def test_put_overwrites_and_delete_removes(store):
    ns = ("memories", "ana")
    store.put(ns, "pref", {"text": "likes green tea"})
    store.put(ns, "pref", {"text": "likes black coffee"})
    assert store.get(ns, "pref").value == {"text": "likes black coffee"}
    store.delete(ns, "pref")
    assert store.get(ns, "pref") is None
    assert store.search(ns) == []
    store.delete(ns, "never-existed")  # deleting a missing key is not an error
    store.put(ns, "pref", {"text": "likes water"})
    assert store.get(ns, "pref").value == {"text": "likes water"}


def test_search_by_namespace_prefix(store):
    fill(store)
    assert sorted(keys(store.search(("docs",), limit=10))) == sorted(DOCS)
    assert sorted(keys(store.search(("docs", "code"), limit=10))) == ["python", "typescript"]
    assert keys(store.search(("notes",))) == ["n1"]
    assert store.search(("doc",)) == []  # labels match whole, not as string prefixes
    assert len(store.search((), limit=10)) == 5


def test_search_without_query_pages_in_insertion_order(store):
    fill(store)
    everything = keys(store.search(("docs", "food"), limit=10))
    assert everything == ["bread", "tea"]
    assert keys(store.search(("docs", "food"), limit=1)) == ["bread"]
    assert keys(store.search(("docs", "food"), limit=1, offset=1)) == ["tea"]
    assert store.search(("docs", "food"), limit=1, offset=2) == []
    assert all(i.score is None for i in store.search(("docs",)))


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"kind": "food"}, {"bread", "tea"}),
        ({"kind": "code", "rank": 1}, {"typescript"}),
        ({"rank": {"$gt": 1}}, {"bread", "tea"}),
        ({"rank": {"$gte": 1, "$lt": 3}}, {"typescript", "bread"}),
        ({"rank": {"$lte": 0}}, {"python"}),
        ({"kind": {"$ne": "code"}}, {"bread", "tea"}),
        ({"kind": {"$eq": "code"}}, {"python", "typescript"}),
        ({"meta": {"n": 3}}, {"tea"}),
        ({"kind": "nothing"}, set()),
    ],
)
def test_search_filters(store, filter, expected):
    fill(store)
    assert set(keys(store.search(("docs",), filter=filter, limit=10))) == expected


def test_semantic_search_ranks_by_meaning(store):
    fill(store)
    hits = store.search(("docs",), query="which programming language has dynamic types?", limit=2)
    assert all(isinstance(h, SearchItem) for h in hits)
    assert hits[0].key == "python"
    assert hits[0].score is not None and hits[0].score >= hits[1].score
    food = store.search(("docs",), query="how do I make tea?", filter={"kind": "food"}, limit=1)
    assert keys(food) == ["tea"]


def test_semantic_search_offset_pages_the_ranking(store):
    fill(store)
    query = "baking bread at home"
    top = keys(store.search(("docs",), query=query, limit=3))
    page2 = keys(store.search(("docs",), query=query, limit=2, offset=1))
    assert top[0] == "bread"
    assert page2 == top[1:3]


def test_index_fields_per_put(store):
    store.put(("docs",), "a", {"title": "Rust ownership rules", "body": "x"}, index=["title"])
    store.put(("docs",), "b", {"title": "Knitting a scarf", "body": "y"}, index=["title"])
    assert store.search(("docs",), query="memory safety in Rust", limit=1)[0].key == "a"


def test_list_namespaces(store):
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "e"), ("x", "b", "c"), ("x", "y")]:
        store.put(ns, "k", {"text": "v"})
    assert store.list_namespaces() == sorted(
        [("a", "b", "c"), ("a", "b", "d"), ("a", "e"), ("x", "b", "c"), ("x", "y")]
    )
    assert store.list_namespaces(prefix=("a",)) == [("a", "b", "c"), ("a", "b", "d"), ("a", "e")]
    assert store.list_namespaces(suffix=("c",)) == [("a", "b", "c"), ("x", "b", "c")]
    assert store.list_namespaces(prefix=("*", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("x", "b", "c"),
    ]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    assert store.list_namespaces(prefix=("a",), max_depth=2) == [("a", "b"), ("a", "e")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "e")]
    store.delete(("x", "y"), "k")
    if isinstance(store, MemCubeStore):
        # Intended difference: an emptied namespace is gone (as in LangGraph's PostgresStore);
        # the reference InMemoryStore keeps listing it.
        assert ("x", "y") not in store.list_namespaces()


async def test_async_operations(store):
    await store.aput(("memories", "ana"), "k1", {"text": "Ana plays the cello"})
    await store.aput(("memories", "ana"), "k2", {"text": "Ana visited Lisbon in May"})
    assert (await store.aget(("memories", "ana"), "k1")).value["text"] == "Ana plays the cello"
    hits = await store.asearch(("memories",), query="musical instrument", limit=1)
    assert keys(hits) == ["k1"]
    assert await store.alist_namespaces() == [("memories", "ana")]
    await store.adelete(("memories", "ana"), "k1")
    assert await store.aget(("memories", "ana"), "k1") is None


def test_invalid_namespaces_rejected_by_both(store):
    with pytest.raises(ValueError):
        store.put((), "k", {"text": "v"})
    with pytest.raises(ValueError):
        store.put(("a.b",), "k", {"text": "v"})


# -- MemCubeStore only: documented differences ------------------------------------------------
def test_reference_store_has_no_ttl(lc_embeddings):
    with pytest.raises(NotImplementedError):
        InMemoryStore().put(("a",), "k", {"text": "v"}, ttl=1)


class Clock:
    """The cube's clock, moved by the test (TTLs are read against it, never the wall)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_ttl_expires_and_reads_refresh(tmp_path, embedder):
    clock = Clock()
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        cube.maintenance.context.clock = clock
        store = MemCubeStore(cube, fields=["text"])
        ns = ("session",)
        store.put(ns, "short", {"text": "a passing thought"}, ttl=1.5 / 60)
        store.put(ns, "kept", {"text": "a refreshed thought"}, ttl=1.5 / 60)
        store.put(ns, "forever", {"text": "no ttl"})
        clock.advance(0.9)
        assert store.get(ns, "kept") is not None  # refreshes: 1.5 s from now
        assert store.get(ns, "short", refresh_ttl=False) is not None
        clock.advance(0.9)
        assert store.get(ns, "short") is None
        assert store.get(ns, "kept", refresh_ttl=False) is not None
        assert set(keys(store.search(ns))) == {"kept", "forever"}
        assert store.search(ns, query="thought", filter={"text": "a passing thought"}) == []


def test_default_ttl_from_config(tmp_path, embedder):
    clock = Clock()
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        cube.maintenance.context.clock = clock
        store = MemCubeStore(cube, ttl={"default_ttl": 0.5 / 60, "refresh_on_read": False})
        store.put(("a",), "k", {"text": "v"})
        assert store.get(("a",), "k") is not None
        clock.advance(0.7)
        assert store.get(("a",), "k") is None


def test_store_keeps_versions_and_deletes_are_undoable(memcube_store):
    cube = memcube_store.cube
    ns = ("memories", "ana")
    memcube_store.put(ns, "pref", {"text": "likes green tea"})
    memcube_store.put(ns, "pref", {"text": "likes black coffee"})
    item = cube.lookup(ns, "pref")
    assert [v.value["text"] for v in cube.history(item.id)] == [
        "likes green tea",
        "likes black coffee",
    ]
    assert item.scope.user is None  # no scope pattern: only the namespace finds it
    memcube_store.delete(ns, "pref")
    cube.restore(item.id)
    assert memcube_store.get(ns, "pref").value == {"text": "likes black coffee"}


def test_items_survive_reopening(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        MemCubeStore(cube).put(("memories", "ana"), "k", {"text": "Ana's cat is called Miso"})
    with MemCube.open(tmp_path / "c", embedder=embedder) as cube:
        store = MemCubeStore(cube)
        assert store.get(("memories", "ana"), "k").value == {"text": "Ana's cat is called Miso"}
        assert store.search(("memories",), query="pet name", limit=1)[0].key == "k"


def _hash_embed(texts):
    """A deterministic embedding function, as LangGraph's ``index["embed"]`` takes."""
    import hashlib

    out = []
    for text in texts:
        vector = [0.0] * 16
        for word in text.lower().split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 16] += 1.0
        out.append(vector)
    return out


def test_langgraph_index_config_names_the_cubes_embedder(tmp_path):
    with MemCube.create(tmp_path / "c", embedder=_hash_embed) as cube:
        store = MemCubeStore(cube, index={"dims": 16, "embed": _hash_embed, "fields": ["text"]})
        store.put(("docs",), "a", {"text": "the red door", "other": "ignored words"})
        store.put(("docs",), "b", {"text": "a blue boat"})
        assert store.search(("docs",), query="blue boat", limit=1)[0].key == "b"
        assert cube.lookup(("docs",), "a").content == "the red door"  # index["fields"]
        with pytest.raises(IncompatibleCubeError, match="dimension 16"):
            MemCubeStore(cube, index={"dims": 384, "embed": _hash_embed})
        with pytest.raises(IncompatibleCubeError, match="was built with"):
            MemCubeStore(cube, index={"dims": 16, "embed": lambda texts: _hash_embed(texts)})
        with pytest.raises(TypeError, match="unknown keys"):
            MemCubeStore(cube, index={"dims": 16, "embedding": _hash_embed})


def test_langgraph_index_may_name_the_default_model_as_langchain_spells_it(cube):
    """``index={"embed": "sentence-transformers:all-MiniLM-L6-v2"}`` is the cube's own model."""
    store = MemCubeStore(
        cube, index={"dims": 384, "embed": "sentence-transformers:all-MiniLM-L6-v2"}
    )
    store.put(("docs",), "a", {"text": "the red door"})
    assert store.search(("docs",), query="red door", limit=1)[0].key == "a"


def test_the_cubes_redaction_policy_holds_for_the_store(memcube_store):
    """What LangGraph puts in the store passes the cube's redaction policy: its text, and the
    value the store keeps."""
    cube = memcube_store.cube
    cube.maintenance.set_redaction({"email": "mask", "phone": "mask"})
    memcube_store.put(
        ("ana", "contact"), "email", {"text": "Ana: ana@example.com, +1 650-253-0000"}
    )
    item = memcube_store.get(("ana", "contact"), "email")
    assert item.value == {"text": "Ana: [EMAIL], [PHONE]"}
    assert "ana@example.com" not in str([m.model_dump() for m in cube.list(Filters.everything())])
