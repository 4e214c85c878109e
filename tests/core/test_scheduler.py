"""The scheduler's behaviour: background adds, idempotent redelivery, retries and dead letters,
consolidation, lifecycle and working memory — on the SQLite queue and on a real Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from cubemem import BackpressureError, InvalidInputError, MemCube, Settings
from cubemem.cli import app
from cubemem.model import utcnow
from cubemem.scheduler import Task, TaskKind, open_queue


def make(tmp_path, embedder, **settings) -> MemCube:
    return MemCube.create(tmp_path / "cube", embedder=embedder, settings=Settings(**settings))


@pytest.fixture(params=["sqlite", "redis"])
def queued_cube(request, tmp_path, embedder):
    url = "sqlite" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    cube = make(tmp_path, embedder, queue_url=url, retry_backoff_s=0.05)
    yield cube
    cube.close()


def test_background_add_returns_ids_then_stores_them(queued_cube):
    one = queued_cube.add("Ana likes jazz", scope={"user": "ana"}, wait=False)
    many = queued_cube.add(["Ana plays chess", "Ana reads Borges"], wait=False)
    turns = queued_cube.add_messages(
        [{"speaker": "Ana", "text": "see you Tuesday"}], session="s1", wait=False
    )
    assert isinstance(one, str) and len(many) == 2 and len(turns) == 1
    assert queued_cube.scheduler.wait([one, *many, *turns], timeout=60)
    assert queued_cube.get(one).content == "Ana likes jazz"
    assert queued_cube.get(one).scope.user == "ana"
    assert queued_cube.search("board games", k=1)[0].id == many[0]
    assert queued_cube.scheduler.wait(timeout=30)
    status = queued_cube.scheduler.status()
    assert status.ready == 0 and status.in_flight == 0 and status.failed == []
    assert status.done >= 3


def test_acknowledged_writes_wait_durably_for_a_worker(tmp_path, embedder):
    cube = make(tmp_path, embedder, workers=0)
    ids = cube.add([f"note {i}" for i in range(5)], wait=False)
    assert cube.count() == 0
    assert cube.scheduler.queue.stats().ready == 1
    assert not cube.scheduler.wait(ids, timeout=0.2)  # nobody is working
    cube.close()
    with MemCube.open(tmp_path / "cube", embedder=embedder) as again:  # workers=1: resumes
        assert again.scheduler.wait(ids, timeout=60)
        assert [again.get(i).content for i in ids] == [f"note {i}" for i in range(5)]


def test_a_full_queue_refuses_background_writes_and_loses_nothing(tmp_path, embedder):
    cube = make(tmp_path, embedder, workers=0, max_queue_depth=3)
    ids = [cube.add(f"note {i}", wait=False) for i in range(3)]
    with pytest.raises(BackpressureError, match="max_queue_depth=3"):
        cube.add("one too many", wait=False)
    assert cube.scheduler.queue.stats().ready == 3  # nothing queued by the refused call
    stored = cube.add("stored at once", wait=True)  # the caller's way past back-pressure
    assert cube.get(stored.id).content == "stored at once"
    cube.close()
    with MemCube.open(tmp_path / "cube", embedder=embedder) as again:
        assert again.scheduler.wait(ids, timeout=60)
        assert again.count() == 4


def test_redelivered_add_is_idempotent(queued_cube):
    ids = queued_cube.add(["alpha memory", "beta memory"], wait=False)
    assert queued_cube.scheduler.wait(ids, timeout=60)
    items = [queued_cube.get(i).model_dump(mode="json") for i in ids]
    task = Task(kind=TaskKind.ADD, payload={"items": items})
    queued_cube.scheduler.process([task, task])  # delivered twice more
    assert queued_cube.count() == 2


def test_bad_input_is_rejected_before_anything_is_queued(queued_cube):
    with pytest.raises(InvalidInputError):
        queued_cube.add(["fine", ""], wait=False)
    assert queued_cube.scheduler.queue.stats().ready == 0
    assert queued_cube.count() == 0


def test_redis_reclaims_tasks_of_a_dead_consumer(tmp_path, redis_url):
    queue = open_queue(redis_url, tmp_path, "reclaim-test")
    queue.put([Task(kind=TaskKind.EXPIRE), Task(kind=TaskKind.EXPIRE)])
    taken = queue.claim("worker-that-dies", 10, lease_s=0.2, block_s=0.1)
    assert len(taken) == 2 and queue.stats().in_flight == 2
    assert queue.claim("survivor", 10, lease_s=0.2, block_s=0.05) == []  # still leased
    time.sleep(0.3)
    again = queue.claim("survivor", 10, lease_s=0.2, block_s=0.05)
    assert sorted(t.id for t in again) == sorted(t.id for t in taken)
    queue.ack(again)
    assert queue.stats().in_flight == 0 and queue.stats().ready == 0
    queue.close()


def test_cli_status_and_retry(tmp_path, embedder):
    cube = make(tmp_path, embedder, workers=0)
    cube.scheduler.queue.put([Task(kind=TaskKind.EXTRACT, payload={"ids": []})])
    (task,) = cube.scheduler.queue.claim("c", 1, 30, 0)
    cube.scheduler.queue.bury(task, "ValueError: broken")
    cube.close()
    runner = CliRunner()
    status = runner.invoke(app, ["scheduler", "status", "--cube", str(tmp_path / "cube")])
    assert status.exit_code == 0, status.output
    assert "ValueError: broken" in status.output
    retry = runner.invoke(app, ["scheduler", "retry", "--cube", str(tmp_path / "cube")])
    assert "replayed 1 task(s)" in retry.output


# -- consolidation ----------------------------------------------------------------------------
def test_near_duplicates_merge_with_lineage_and_undo(tmp_path, embedder):
    cube = make(tmp_path, embedder, consolidate=True)
    first = cube.add({"content": "Ana lives in Porto", "source_ids": ["m1"]}, scope={"user": "ana"})
    other = cube.add("Ana likes sardines", scope={"user": "ana"})
    bob = cube.add("Bob lives in Porto", scope={"user": "bob"})
    second = cube.add(
        {"content": "Ana lives in Porto now", "source_ids": ["m7"]}, scope={"user": "ana"}
    )
    survivor, merged = cube.get(first.id), cube.get(second.id)
    assert survivor.content == "Ana lives in Porto now" and survivor.version == 2
    assert survivor.provenance.source_ids == ["m1", "m7"]
    assert survivor.merged_from == [second.id]
    assert merged.status == "archived" and merged.superseded_by == first.id
    assert [v.content for v in cube.history(first.id)] == [
        "Ana lives in Porto",
        "Ana lives in Porto now",
    ]
    assert cube.get(other.id).version == 1 and cube.get(bob.id).version == 1  # not near / not ours
    assert [r.id for r in cube.search("where does Ana live", k=5, filters={"user": "ana"})].count(
        first.id
    ) == 1
    back, restored = cube.maintenance.undo_merge(second.id)
    assert back.content == "Ana lives in Porto" and back.provenance.source_ids == ["m1"]
    assert restored.status == "active" and restored.superseded_by is None
    cube.close()


def test_messages_are_never_merged(tmp_path, embedder):
    cube = make(tmp_path, embedder, consolidate=True)
    cube.add_messages(
        [{"speaker": "a", "text": "ok thanks"}, {"speaker": "a", "text": "ok thanks"}]
    )
    assert cube.count() == 2
    cube.close()


# -- lifecycle --------------------------------------------------------------------------------
def test_lifecycle_archives_expired_and_cold_spares_pinned_and_undoes(cube):
    expiring = cube.add(
        {"content": "parking ticket valid today", "expires_at": utcnow() + timedelta(seconds=1)}
    )
    cold = cube.add("an old passing remark")
    pinned = cube.add("Ana's blood type is O-", tags=["pinned"])
    hot = cube.add("Ana's favourite tea is sencha")
    for _ in range(20):
        cube.search("favourite tea", k=1)
    later = utcnow() + timedelta(days=200)
    report = cube.maintenance.lifecycle(now=later, dry_run=True)
    assert cube.get(cold.id).status == "active"  # dry run changes nothing
    report = cube.maintenance.lifecycle(now=later)
    assert report.expired == [expiring.id]
    assert cold.id in report.cold and pinned.id not in report.cold
    assert cube.get(cold.id).status == "archived" and cube.get(pinned.id).status == "active"
    assert hot.id not in report.cold or cube.get(hot.id).usage.hits > 0
    assert cold.id not in [r.id for r in cube.search("passing remark", k=5)]
    cube.restore(cold.id)
    assert cube.get(cold.id).status == "active"
    # archive and restore are versions of their own (history is append-only); the text stays
    assert [(v.status, v.content) for v in cube.history(cold.id)] == [
        ("active", "an old passing remark"),
        ("archived", "an old passing remark"),
        ("active", "an old passing remark"),
    ]


# -- working memory ---------------------------------------------------------------------------
def test_working_memory_hot_set_and_hooks(tmp_path, embedder):
    cube = make(tmp_path, embedder, working_memory_size=3)
    events = []
    unsubscribe = cube.maintenance.on_working_memory_change(events.append)
    items = cube.add(
        ["Ana is vegetarian", "Ana cycles to work", "Ana's sister is Eva", "Ana speaks Greek"],
        scope={"agent": "chef", "session": "s1"},
    )
    hot = cube.maintenance.working_memory(agent="chef", session="s1")
    assert len(hot) == 3 and events[-1].reason == "membership"
    assert (events[-1].agent, events[-1].session) == ("chef", "s1")
    for _ in range(3):
        cube.search("sister's name", k=1, filters={"agent": "chef", "session": "s1"})
    assert cube.maintenance.working_memory(agent="chef", session="s1")[0].id == items[2].id
    cube.update(items[2].id, "Ana's sister is called Eva")
    assert events[-1].reason == "updated" and items[2].id in events[-1].ids
    cube.delete(items[2].id)
    assert events[-1].reason == "deleted" and items[2].id not in events[-1].ids
    assert items[2].id not in [
        i.id for i in cube.maintenance.working_memory(agent="chef", session="s1")
    ]
    unsubscribe()
    count = len(events)
    cube.add("Ana likes figs", scope={"agent": "chef", "session": "s1"})
    assert len(events) == count
    cube.close()


def test_a_worker_survives_its_queue_failing_under_it(tmp_path, embedder):
    """An acknowledgement that cannot get the queue's lock does not kill the worker: the task
    comes back when its lease ends and is handled again; later work is still processed."""
    import sqlite3
    import threading

    cube = make(tmp_path, embedder, busy_timeout_s=0.2, task_lease_s=1.0)
    calls: list[tuple[str | None, str | None]] = []
    released = threading.Event()

    def hold_queue_lock() -> None:  # another process writing the queue for a while
        db = sqlite3.connect(tmp_path / "cube" / "queue.sqlite3", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        holding.set()
        time.sleep(0.6)
        db.execute("ROLLBACK")
        db.close()
        released.set()

    holding = threading.Event()

    def promoter(agent: str | None, session: str | None) -> int:
        calls.append((agent, session))
        if len(calls) == 1:  # the first time, the queue is locked when the worker acks
            threading.Thread(target=hold_queue_lock).start()
            holding.wait(5)
        return 1

    cube.scheduler.on_promote(promoter)
    cube.scheduler.promote("chef", "s1")
    assert released.wait(10)
    deadline = time.monotonic() + 30
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls == [("chef", "s1"), ("chef", "s1")]  # redelivered after the lease, not lost
    assert cube.scheduler.wait(timeout=30)
    assert cube.scheduler.status().workers == 1  # still alive
    later = cube.add("Ana likes jazz", wait=False)
    assert cube.scheduler.wait([later], timeout=30)
    cube.close()
