"""MemoryOS: cubes under one root, one scheduler for all of them, search across cubes."""

from __future__ import annotations

import pytest

from cubemem import InvalidInputError, MemCube, MemoryOS, NotFoundError, Settings
from cubemem.scheduler import TaskKind


@pytest.fixture
def memory_os(tmp_path, embedder):
    with MemoryOS(tmp_path / "root", embedder=embedder) as os_:
        yield os_


def test_cross_cube_search_merges_by_score_and_labels_each_result(memory_os):
    work = memory_os.create_cube("work")
    home = memory_os.create_cube("home")
    work.add(["The quarterly report is due on Friday", "Standup is at 9:30 every day"])
    home.add(["Ana's cat Pixel eats at seven", "The boiler needs a service in May"])
    assert memory_os.list_cubes() == ["home", "work"]
    results = memory_os.search("when is the report due?", k=3)
    assert results[0].content == "The quarterly report is due on Friday"
    assert results[0].cube_name == "work" and results[0].item.cube == work.id
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert {r.cube_name for r in results} == {"work", "home"}
    only_home = memory_os.search("when is the report due?", cubes=["home"], k=5)
    assert {r.cube_name for r in only_home} == {"home"} and len(only_home) == 2
    pet = memory_os.search("what does the cat eat?", k=1)
    assert pet[0].cube_name == "home" and "Pixel" in pet[0].content


def test_one_scheduler_and_one_queue_serve_every_cube(memory_os):
    a, b = memory_os.create_cube("a"), memory_os.create_cube("b")
    assert a.scheduler is memory_os.scheduler is b.scheduler
    ids_a = a.add(["alpha one", "alpha two"], wait=False)
    ids_b = b.add("beta one", wait=False)
    assert memory_os.scheduler.wait(ids_a, timeout=60, cube=a.id)
    assert b.scheduler.wait([ids_b], timeout=60)  # any of the OS's open cubes
    assert [i.content for i in a.list()] == ["alpha one", "alpha two"]
    assert [i.content for i in b.list()] == ["beta one"]
    assert (memory_os.root / "queue.sqlite3").exists()
    assert not (memory_os.root / "a" / "queue.sqlite3").exists()
    assert memory_os.scheduler.wait(timeout=60)  # rows are visible before the ack lands
    assert memory_os.scheduler.status().done == 2


def test_tasks_left_behind_are_done_when_the_os_opens_again(tmp_path, embedder):
    settings = Settings(workers=0)
    with MemoryOS(tmp_path / "root", embedder=embedder, settings=settings) as os_:
        ids = os_.create_cube("notes").add(["queued one", "queued two"], wait=False)
        (task,) = os_.scheduler.queue.claim("peek", 1, 0.001, 0)
        assert task.kind is TaskKind.ADD and task.payload["cube"] == os_.open_cube("notes").id
    with MemoryOS(tmp_path / "root", embedder=embedder) as again:  # a worker, a fresh process
        notes = again.open_cube("notes")
        assert again.scheduler.wait(ids, timeout=60, cube=notes.id)
        assert notes.count() == 2


def test_a_cube_opened_through_the_os_and_alone_sees_the_same_data(tmp_path, embedder):
    with MemoryOS(tmp_path / "root", embedder=embedder) as os_:
        cube = os_.create_cube("shared")
        item = cube.add("Ben prefers tea", scope={"user": "ben"})
        cube.update(item.id, "Ben prefers coffee now")
        found = cube.search("drinks", k=1)[0].id  # counts a hit: read the rows after it
        through_os = (cube.list(), cube.history(item.id), found)
    with MemCube.open(tmp_path / "root" / "shared", embedder=embedder) as alone:
        assert alone.list() == through_os[0]
        assert alone.history(item.id) == through_os[1]
        assert alone.search("drinks", k=1)[0].id == through_os[2]


def test_bad_names_and_missing_cubes_are_typed_errors(memory_os, tmp_path, embedder):
    memory_os.create_cube("ok")
    for bad in ["", "../escape", "a/b", ".hidden", "x" * 200, None]:
        with pytest.raises(InvalidInputError, match="cube name"):
            memory_os.create_cube(bad)
    with pytest.raises(InvalidInputError, match="already exists"):
        memory_os.create_cube("ok")
    with pytest.raises(NotFoundError, match="no cube 'nope'"):
        memory_os.open_cube("nope")
    assert memory_os.list_cubes() == ["ok"]
    MemCube.create(tmp_path / "lone", embedder=embedder).close()
    with pytest.raises(InvalidInputError, match="is a cube"):
        MemoryOS(tmp_path / "lone", embedder=embedder)
