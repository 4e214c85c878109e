"""Issue 43, items 2-6: a forget reaches the writes acknowledged but not stored yet, in any
queue and from any process, the dead letters, the held changes of what it erases, and stays
inside a scoped admin's grant (its changes of fact, the entity graph)."""

from __future__ import annotations

import pytest

from cubemem import MemCube, MemoryOS, NotFoundError, Settings
from cubemem.errors import CubeBusyError
from cubemem.scheduler import TaskKind

IDLE = Settings(workers=0)  # acknowledged writes stay queued: no worker in this process


def _queue_bytes(path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_a_forget_from_another_process_reaches_the_roots_queued_writes(tmp_path, embedder):
    """``cubemem serve`` acknowledged bob's writes into the root's queue; ``cubemem forget
    --cube ROOT/team --user bob`` opens the cube alone. Once the queue drains, none exists."""
    root = tmp_path / "root"
    with MemoryOS(root, embedder=embedder, settings=IDLE) as os_:
        team = os_.create_cube("team")
        bobs = team.add([f"bob's note {n} zq7queued" for n in range(60)], scope={"user": "bob"},
                        wait=False)  # fmt: skip
        (anas,) = team.add(["ana's note"], scope={"user": "ana"}, wait=False)
    with MemCube.open(root / "team", embedder=embedder, settings=IDLE) as alone:
        gone = alone.forget(user="bob")
    assert gone.count == 0  # nothing was stored yet
    assert b"zq7queued" not in _queue_bytes(root / "queue.sqlite3")
    with MemoryOS(root, embedder=embedder) as os_:
        team = os_.open_cube("team")
        assert os_.scheduler.wait(timeout=120)
        assert team.get(anas).content == "ana's note"  # the write it did not ask for lands
        for id_ in bobs:
            with pytest.raises(NotFoundError):
                team.get(id_)


def test_a_forget_waits_for_a_write_a_worker_holds_or_says_so(tmp_path, embedder):
    with MemoryOS(tmp_path / "root", embedder=embedder, settings=IDLE) as os_:
        team = os_.create_cube("team")
        team.add("bob's held note", scope={"user": "bob"}, wait=False)
        (held,) = os_.scheduler.queue.claim("elsewhere:1:1", 10, 600, 0)  # another worker's
        quick = Settings(workers=0, forget_drain_s=0.3)
    alone = MemCube.open(tmp_path / "root" / "team", embedder=embedder, settings=quick)
    with alone, pytest.raises(CubeBusyError, match="being stored by a worker"):
        alone.forget(user="bob")
    assert held.kind is TaskKind.ADD


def test_a_forget_on_a_redis_queue_reaches_queued_and_dead_writes(tmp_path, embedder, redis_url):
    settings = Settings(workers=0, queue_url=redis_url, forget_drain_s=5)
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=settings) as cube:
        bob = cube.add(["bob zq7redis one", "bob zq7redis two"], scope={"user": "bob"},
                       wait=False)  # fmt: skip
        ana = cube.add("ana's kept note", scope={"user": "ana"}, wait=False)
        dead = cube.add("bob zq7redis dead", scope={"user": "bob"}, wait=False)
        queue = cube.scheduler.queue
        tasks = queue.claim("w:1:1", 10, 60, 0)
        (last,) = [t for t in tasks if t.payload["items"][0]["id"] == dead]
        queue.bury(last, "failed five times")
        for task in tasks:  # the others wait for a retry (the delayed set), one of bob's too
            if task is not last:
                queue.retry(task, "later", 0)
        bob_more = cube.add("bob zq7redis stream", scope={"user": "bob"}, wait=False)
        cube.forget(user="bob")
        assert all("zq7redis" not in d.task.model_dump_json() for d in queue.dead_letters())
        cube.scheduler.retry_failed()
        cube.scheduler.workers = 1
        assert cube.scheduler.start().wait(timeout=120)
        assert cube.get(ana).content == "ana's kept note"
        for id_ in [*bob, dead, bob_more]:
            with pytest.raises(NotFoundError):
                cube.get(id_)


def test_dead_letters_lose_a_forgotten_users_text_and_a_retry_brings_nothing_back(
    tmp_path, embedder
):
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=IDLE) as cube:
        (ana,) = cube.add(["Ana's diagnosis is zq7deadletter"], scope={"user": "ana"}, wait=False)
        bob = cube.add("bob's note", scope={"user": "bob"}, wait=False)
        queue = cube.scheduler.queue
        for task in queue.claim("w:1:1", 10, 60, 0):
            queue.bury(task, "failed five times")
        assert len(queue.dead_letters()) == 2
        cube.forget(user="ana")
        assert [d.task.payload["items"][0]["id"] for d in queue.dead_letters()] == [bob]
        assert b"zq7deadletter" not in _queue_bytes(cube.path / "queue.sqlite3")
        cube.scheduler.retry_failed()
        cube.scheduler.workers = 1
        assert cube.scheduler.start().wait(timeout=120)
        with pytest.raises(NotFoundError):
            cube.get(ana)
        assert cube.get(bob).content == "bob's note"


def test_a_part_of_a_queued_batch_is_forgotten_the_rest_is_stored(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder, settings=IDLE) as cube:
        a, b = cube.add(["one for ana", "one for bob"], wait=False)  # one task, two items
        cube.forget([a])
        cube.scheduler.workers = 1
        assert cube.scheduler.start().wait(timeout=120)
        assert cube.get(b).content == "one for bob"
        with pytest.raises(NotFoundError):
            cube.get(a)


def _team(tmp_path, embedder):
    os_ = MemoryOS(tmp_path / "os", embedder=embedder)
    os_.create_cube("team")
    for name, scope in (("dpo", None), ("ana-desk", {"user": "ana"})):
        os_.access.create_agent(name, trust=0.9)
        os_.access.grant(name, "team", "admin", scope=scope)
    return os_


def test_a_scoped_admins_forget_does_not_follow_a_change_of_fact_into_another_users(
    tmp_path, embedder
):
    with _team(tmp_path, embedder) as os_:
        local = os_.open_cube("team")
        fact = local.add("The team meets in Porto", scope={"user": "ana"})
        moved = local.update(fact.id, "The team meets in Lisbon", valid_from="2030-01-01",
                             scope={"user": "bob"})  # fmt: skip
        desk = os_.as_agent("ana-desk").open_cube("team")
        gone = desk.forget(user="ana")
        assert fact.id in gone.ids and moved.id not in gone.ids
        assert local.get(moved.id).content == "The team meets in Lisbon"
        local.add("ana's other note", scope={"user": "ana"})
        fact2 = local.add("Ana drives to work", scope={"user": "ana"})
        moved2 = local.update(fact2.id, "Bob cycles to work", valid_from="2030-02-01",
                              scope={"user": "bob"})  # fmt: skip
        desk.forget([fact2.id])
        assert local.get(moved2.id).content == "Bob cycles to work"
        with pytest.raises(NotFoundError):
            desk.forget([moved2.id])  # bob's: outside the grant
        assert moved2.id in os_.as_agent("dpo").open_cube("team").forget([moved2.id]).ids


def test_a_forget_takes_the_pending_proposals_of_what_it_erases(tmp_path, embedder):
    with _team(tmp_path, embedder) as os_:
        os_.access.create_agent("intern", trust=0.2)
        os_.access.grant("intern", "team", "write")
        local = os_.open_cube("team")
        fact = local.add("The vault code is zq7proposal", scope={"user": "ana"})
        intern = os_.as_agent("intern").open_cube("team")
        intern.delete(fact.id)  # a low-trust delete waits as a proposal carrying the text
        held = local.list({"status": ["quarantined"]})
        assert held and all(p.provenance.source == "proposal" for p in held)
        gone = local.forget([fact.id])
        assert {p.id for p in held} <= set(gone.ids)
        assert local.list({"status": ["quarantined"]}) == []


def test_a_scoped_admin_cannot_merge_or_split_another_users_entities(tmp_path, embedder):
    with _team(tmp_path, embedder) as os_:
        local = os_.open_cube("team")
        local.add("Bob met Carol Smith at the harbour", scope={"user": "bob"})
        local.add("Carol went sailing with Bob", scope={"user": "bob"})
        local.add("Ana met Dora Lima in town", scope={"user": "ana"})
        local.add("Dora called Ana", scope={"user": "ana"})
        bobs = {e.name: e for e in local.entities(filters={"user": "bob"})}
        assert "Bob" in bobs
        desk = os_.as_agent("ana-desk").open_cube("team")
        for guessed in ("Bob", bobs["Bob"].id, "Nobody Here"):
            with pytest.raises(NotFoundError) as caught:
                desk.merge_entities(guessed, "Ana")
            assert "Bob" not in str(caught.value) or guessed == "Bob"
            with pytest.raises(NotFoundError):
                desk.split_entity(guessed)
        anas = [e.name for e in local.entities(filters={"user": "ana"})]
        assert "Ana" in anas and "Dora Lima" in anas
        merged = desk.merge_entities("Dora Lima", "Ana")  # its own user's: allowed
        assert merged.owner == bobs["Bob"].owner.replace("bob", "ana")
