"""A MemoryOS on PostgreSQL is the database, not a folder: roots on other machines (here,
other folders) opened on it see the same cubes, agents, grants and audit log; a root made for
another database is refused; two machines creating one cube name at once make one cube."""

from __future__ import annotations

import threading

import pytest

from cubemem import IncompatibleCubeError, InvalidInputError, MemCube, MemoryOS, Settings
from cubemem.os import OS_MANIFEST


def test_a_second_root_on_the_database_is_the_same_memory(tmp_path, embedder, fresh_postgres_url):
    settings = Settings(store_url=fresh_postgres_url)
    with MemoryOS(tmp_path / "host-a", embedder=embedder, settings=settings) as a:
        kept = a.create_cube("team").add("Ana keeps bees", scope={"user": "ana"})
        _, key = a.access.create_agent("bot", trust=0.9)
        a.access.grant("bot", "team", "write")
        os_id = a.id
    with MemoryOS(tmp_path / "host-b", embedder=embedder, settings=settings) as b:
        assert b.id == os_id and b.list_cubes() == ["team"]
        assert b.open_cube("team").get(kept.id).content == "Ana keeps bees"
        bot = b.authenticate(key)  # the agent and its grant came from the database
        assert bot is not None
        written = bot.open_cube("team").add("Ben fixes bikes", wait=True)
        b.create_cube("notes")
    with MemoryOS(tmp_path / "host-a", embedder=embedder, settings=settings) as a:
        assert a.list_cubes() == ["notes", "team"]
        assert a.open_cube("team").get(written.id).provenance.author_agent == "bot"
        assert [e.memory_id for e in a.access.audit(cube="team", limit=1)] == [written.id]


def test_a_root_made_for_another_database_is_refused(tmp_path, embedder, new_postgres_database):
    first, second = new_postgres_database(), new_postgres_database()
    with MemoryOS(tmp_path / "m", embedder=embedder, settings=Settings(store_url=first)) as os_:
        made_for = os_.id
    with MemoryOS(tmp_path / "x", embedder=embedder, settings=Settings(store_url=second)) as os_:
        other = os_.id
    with pytest.raises(IncompatibleCubeError, match="another database"):
        MemoryOS(tmp_path / "m", embedder=embedder, settings=Settings(store_url=second))
    assert made_for in (tmp_path / "m" / OS_MANIFEST).read_text()  # left as it was
    with MemoryOS(tmp_path / "x", embedder=embedder, settings=Settings(store_url=second)) as os_:
        assert os_.id == other


def test_an_embedded_root_moved_to_an_empty_database_keeps_its_identity(
    tmp_path, embedder, fresh_postgres_url
):
    with MemoryOS(tmp_path / "m", embedder=embedder) as os_:
        local = os_.id
    on_pg = Settings(store_url=fresh_postgres_url)
    with MemoryOS(tmp_path / "m", embedder=embedder, settings=on_pg) as os_:
        assert os_.id == local  # its queue keys stay its own
    with MemoryOS(tmp_path / "n", embedder=embedder, settings=on_pg) as os_:
        assert os_.id == local


def test_two_roots_creating_one_name_at_once_make_one_cube(tmp_path, embedder, fresh_postgres_url):
    settings = Settings(store_url=fresh_postgres_url)
    roots = [
        MemoryOS(tmp_path / f"host-{n}", embedder=embedder, settings=settings) for n in range(2)
    ]
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def create(os_: MemoryOS) -> None:
        barrier.wait()
        try:
            outcomes.append(os_.create_cube("team").id)
        except InvalidInputError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=create, args=(os_,)) for os_ in roots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [o for o in outcomes if isinstance(o, str)]
    assert len(made) == 1 and len(outcomes) == 2, outcomes
    for os_ in roots:
        assert os_.open_cube("team").id == made[0]
        os_.close()


def test_cubes_made_before_the_catalog_are_adopted(tmp_path, embedder, fresh_postgres_url):
    settings = Settings(store_url=fresh_postgres_url)
    with MemoryOS(tmp_path / "m", embedder=embedder, settings=settings):
        pass
    # a cube folder on PostgreSQL that the catalog does not know (made by an older cubemem)
    with MemCube.create(tmp_path / "m" / "old", embedder=embedder, settings=settings) as cube:
        kept = cube.add("Chloe collects maps")
    with MemoryOS(tmp_path / "m", embedder=embedder, settings=settings) as again:
        assert again.list_cubes() == ["old"]
    with MemoryOS(tmp_path / "elsewhere", embedder=embedder, settings=settings) as other:
        assert other.open_cube("old").get(kept.id).content == "Chloe collects maps"
