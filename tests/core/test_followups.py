"""Work that follows a write — extraction and consolidation — is durable task work: retried,
dead-lettered with its error, visible in ``scheduler status``, replayable; inline after a
synchronous write, its failure is raised only once the memories are stored."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from cubemem import FollowUpError, MemCube, Settings
from cubemem.cli import app
from cubemem.scheduler import TaskKind, add_task

TURNS = [
    {"speaker": "Ana", "text": "I moved to Lisbon last spring", "id": "m1"},
    {"speaker": "Ben", "text": "Nice, do you still play the cello?", "id": "m2"},
]


class Extractor:
    """Fails ``failures`` times, then turns each Ana turn into one fact."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, turns):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"model endpoint down (call {self.calls})")
        return [f"Ana fact: {t.content}" for t in turns if t.provenance.speaker == "Ana"]


@pytest.fixture(params=["sqlite", "redis"])
def queued_cube(request, tmp_path, embedder):
    url = "sqlite" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    settings = Settings(queue_url=url, retry_backoff_s=0.05, max_attempts=3)
    cube = MemCube.create(tmp_path / "cube", embedder=embedder, settings=settings)
    yield cube
    cube.close()


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_extractor_that_fails_twice_stores_its_facts_after_the_retries(queued_cube):
    extractor = Extractor(failures=2)
    queued_cube.maintenance.extractor = extractor
    ids = queued_cube.add_messages(TURNS, session="s1", scope={"user": "ana"}, wait=False)
    assert queued_cube.scheduler.wait(ids, timeout=60)
    assert queued_cube.scheduler.wait(timeout=60)  # the extract task too, retries included
    assert extractor.calls == 3
    assert queued_cube.scheduler.status().failed == []
    (fact,) = queued_cube.list({"user": "ana"}, limit=10)[2:]
    assert fact.content == "Ana fact: I moved to Lisbon last spring"
    assert fact.provenance.source == "extract"
    assert fact.provenance.source_ids == ["m1", "m2"]  # cites the turns it came from
    assert fact.scope.user == "ana" and fact.scope.session == "s1"
    hits = queued_cube.search("where does Ana live?", k=3, filters={"user": "ana"})
    assert fact.id in [h.id for h in hits]


def test_an_extractor_that_always_fails_is_dead_lettered_and_replayable(queued_cube, tmp_path):
    queued_cube.maintenance.extractor = Extractor(failures=10**6)
    ids = queued_cube.add_messages(TURNS, session="s1", wait=False)
    scheduler = queued_cube.scheduler
    _wait_for(lambda: scheduler.status().failed)
    (dead,) = scheduler.status().failed
    assert dead.task.kind is TaskKind.EXTRACT and sorted(dead.task.payload["ids"]) == sorted(ids)
    assert dead.error.startswith("RuntimeError: model endpoint down")
    assert dead.task.attempts == 3
    # the raw turns are stored and searchable all the same
    assert queued_cube.search("Lisbon", k=1)[0].id == ids[0]
    runner = CliRunner()
    where = ["--cube", str(tmp_path / "cube"), "--queue", scheduler.queue.url]
    status = runner.invoke(app, ["scheduler", "status", *where])
    assert status.exit_code == 0, status.output
    assert "model endpoint down" in status.output and '"extract"' in status.output
    queued_cube.maintenance.extractor = Extractor(failures=0)  # the endpoint is back
    retry = runner.invoke(app, ["scheduler", "retry", *where])
    assert "replayed 1 task(s)" in retry.output
    assert scheduler.wait(timeout=60)
    assert scheduler.status().failed == []
    assert [f.content for f in queued_cube.list({"kind": "plaintext"})[2:]] == [
        "Ana fact: I moved to Lisbon last spring"
    ]


def test_a_redelivered_add_still_queues_its_follow_ups(tmp_path, embedder):
    """A worker that stored the rows and died before acknowledging: the redelivered add finds
    them stored, and still queues extraction (whose facts are then stored once)."""
    cube = MemCube.create(tmp_path / "cube", embedder=embedder, settings=Settings(workers=0))
    # the first delivery runs where no extractor is set ...
    turns = cube.add_messages(TURNS, session="s1", wait=False)
    scheduler = cube.scheduler
    scheduler.process(scheduler.queue.claim("w", 10, 30, 0))
    assert cube.count() == 2 and scheduler.queue.stats().ready == 0
    cube.maintenance.extractor = Extractor(failures=0)  # ... the redelivery where one is
    task = add_task(cube.id, [cube.get(i) for i in turns])
    for _ in range(2):  # delivered twice more
        scheduler.process([task])
        scheduler.process(scheduler.queue.claim("w", 10, 30, 0))
    assert [i.content for i in cube.list()][2:] == ["Ana fact: I moved to Lisbon last spring"]
    cube.close()


def test_background_consolidation_is_a_task_of_its_own(tmp_path, embedder):
    settings = Settings(consolidate=True, workers=0)
    cube = MemCube.create(tmp_path / "cube", embedder=embedder, settings=settings)
    first = cube.add("Ana lives in Porto", scope={"user": "ana"})
    second = cube.add("Ana lives in Porto now", scope={"user": "ana"}, wait=False)
    scheduler = cube.scheduler
    scheduler.process(scheduler.queue.claim("w", 10, 30, 0))  # the add ...
    assert cube.get(second).status == "active"
    (task,) = scheduler.queue.claim("w", 10, 30, 0)  # ... queued the consolidation
    assert task.kind is TaskKind.CONSOLIDATE and task.payload["ids"] == [second]
    scheduler.process([task])
    assert cube.get(second).superseded_by == first.id
    assert cube.get(first.id).content == "Ana lives in Porto now"
    cube.close()


def test_synchronous_add_raises_a_follow_up_failure_after_storing(cube):
    cube.maintenance.extractor = Extractor(failures=1)
    with pytest.raises(FollowUpError, match="were stored") as caught:
        cube.add_messages(TURNS, session="s1")
    assert len(caught.value.ids) == 2
    assert {cube.get(i).content for i in caught.value.ids} == {t["text"] for t in TURNS}
    assert [f.content for f in cube.maintenance.extract(caught.value.ids)] == [
        "Ana fact: I moved to Lisbon last spring"
    ]
    assert cube.maintenance.extract(caught.value.ids) == []  # stored once, however often it runs
    assert cube.count() == 3
