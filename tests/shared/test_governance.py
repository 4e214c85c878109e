"""Forget as an agent: the admin grant, the grant's scope, and the audit record (ids and
count, never content); the canary scan on PostgreSQL's tables."""

from __future__ import annotations

import pytest

from cubemem import MemCube, MemoryOS, NotFoundError, PermissionDeniedError, Settings


def test_an_admin_agent_forgets_within_its_scope_and_is_audited(tmp_path, embedder):
    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        os_.create_cube("team")
        os_.access.create_agent("dpo", trust=0.9)
        os_.access.grant("dpo", "team", "admin")
        os_.access.create_agent("ana-desk", trust=0.9)
        os_.access.grant("ana-desk", "team", "admin", scope={"user": "ana"})
        local = os_.open_cube("team")
        ana = local.add(["Ana's secret is zq7audit", "Ana sings"], scope={"user": "ana"})
        bob = local.add("Bob's note", scope={"user": "bob"})
        desk = os_.as_agent("ana-desk").open_cube("team")
        with pytest.raises(PermissionDeniedError):
            desk.forget(user="bob")  # outside its grant's scope
        with pytest.raises(NotFoundError):
            desk.forget([bob.id])
        assert local.get(bob.id).content == "Bob's note"
        gone = os_.as_agent("dpo").open_cube("team").forget(user="ana")
        assert sorted(gone.ids) == sorted(i.id for i in ana)
        (entry,) = [e for e in os_.access.audit(cube="team") if e.action == "forget"]
        assert entry.agent == "dpo" and entry.detail["count"] == 2
        assert sorted(entry.detail["ids"]) == sorted(i.id for i in ana)
        assert "zq7audit" not in entry.model_dump_json()  # ids and counts, never content


def test_postgresql_keeps_no_row_of_a_forgotten_user(tmp_path, embedder, postgres_url):
    settings = Settings(store_url=postgres_url)
    with MemCube.create(tmp_path / "pg", embedder=embedder, settings=settings) as cube:
        cube.add(["Ana's code word is zq7pgcanary", "Ana sings"], scope={"user": "ana"})
        cube.put(("prefs",), "ana", "zq7pgkeyed", scope={"user": "ana"})
        cube.add("Bob likes tea", scope={"user": "bob"})
        assert _rows_holding(postgres_url) == ["zq7pgcanary", "zq7pgkeyed"]  # stored at first
        cube.forget(user="ana")
        assert [r.content for r in cube.search("tea", filters={"user": "bob"})] == ["Bob likes tea"]
    assert _rows_holding(postgres_url) == []


def _rows_holding(url: str) -> list[str]:
    """The canaries any row of any table in the database holds (text of whole rows)."""
    import psycopg

    found: set[str] = set()
    with psycopg.connect(url) as db:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        for table in tables:
            for (row,) in db.execute(f'SELECT t::text FROM "{table}" t'):
                found |= {c for c in ("zq7pgcanary", "zq7pgkeyed") if c in row}
    return sorted(found)


def test_a_chroma_server_keeps_no_vector_or_byte_of_a_forgotten_user(
    tmp_path, embedder, chroma_server
):
    """Vectors on a Chroma server: a forget deletes them from the collection (not only from
    the rows), and neither the cube's folder nor the server's data folder holds the text."""
    import chromadb

    url, server_folder = chroma_server
    settings = Settings(store_url=url)
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder, settings=settings) as cube:
        ana = cube.add(["Ana's code word is zq7chromacanary", "Ana sings"], scope={"user": "ana"})
        cube.add("Bob likes tea", scope={"user": "bob"})
        host, port = url.removeprefix("chroma+http://").split(":")
        client = chromadb.HttpClient(host=host, port=int(port))
        collection = client.get_collection(f"cubemem-{cube.id}")
        assert len(collection.get(ids=[i.id for i in ana])["ids"]) == 2
        cube.forget(user="ana")
        assert collection.get(ids=[i.id for i in ana])["ids"] == []
        assert collection.count() == 1
        assert [r.content for r in cube.search("tea", filters={"user": "bob"})] == ["Bob likes tea"]
    for folder in (path, server_folder):
        blob = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
        assert b"zq7chromacanary" not in blob
