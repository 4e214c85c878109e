"""Retention rules with a controlled clock: keep N days, keep the last N, forget what was
deleted; a dry run changes nothing; each expiry is a forget, audited by ids and count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cubemem import InvalidInputError, MemCube, MemoryOS, RetentionRule

START = datetime(2026, 1, 1, tzinfo=UTC)
ANY = {"status": ["active", "deleted", "archived", "quarantined"]}


@pytest.fixture
def timed(cube):
    clock = {"now": START}
    cube.maintenance.context.clock = lambda: clock["now"]
    return cube, clock


def _add_daily(cube, clock, texts, **kwargs):
    items = []
    for n, text in enumerate(texts):
        clock["now"] = START + timedelta(days=n)
        items.append(cube.add(text, **kwargs))
    return items


def test_keep_days_forgets_what_is_older_and_the_sweep_runs_it(timed):
    cube, clock = timed
    old, mid, new = _add_daily(
        cube, clock, ["day one", "day two", "day three"], scope={"user": "ana"}
    )
    other = cube.add("Bob's note", scope={"user": "bob"})
    cube.maintenance.set_retention(
        [{"name": "ana 30d", "filters": {"user": "ana"}, "keep_days": 30}]
    )
    clock["now"] = START + timedelta(days=31, hours=12)  # day one is 31.5 days old, day two 30.5
    (plan,) = cube.maintenance.apply_retention(dry_run=True)
    assert plan.dry_run and plan.ids == sorted([old.id, mid.id])
    assert cube.count({"user": "ana"}) == 3  # a dry run changes nothing
    report = cube.maintenance.lifecycle()  # the scheduler's sweep runs the rules
    (expiry,) = report.retention
    assert expiry.rule == "ana 30d" and sorted(expiry.ids) == sorted([old.id, mid.id])
    assert [m.id for m in cube.list({"user": "ana", **ANY})] == [new.id]
    assert cube.get(other.id).content == "Bob's note"  # another user's: kept however old


def test_keep_last_and_tags(timed):
    cube, clock = timed
    notes = _add_daily(cube, clock, [f"note {n}" for n in range(5)], tags=["scratch"])
    kept = cube.add("a keeper", tags=["important"])
    cube.maintenance.set_retention([
        RetentionRule(name="scratch", filters={"tags": ["scratch"]}, keep_last=2)
    ])  # fmt: skip
    (expiry,) = cube.maintenance.apply_retention()
    assert sorted(expiry.ids) == sorted(n.id for n in notes[:3])
    assert {m.content for m in cube.list(ANY)} == {"note 3", "note 4", "a keeper"}
    assert cube.get(kept.id)
    assert cube.maintenance.apply_retention()[0].ids == []  # nothing more is due


def test_forget_deleted_takes_a_deleted_session_for_good(timed):
    cube, _clock = timed
    turns = cube.add_messages(
        [{"speaker": "Ana", "text": "my code word is osprey"}, {"speaker": "Ana", "text": "ok"}],
        session="s1",
    )
    keep = cube.add_messages([{"speaker": "Ana", "text": "hello"}], session="s2")
    for turn in turns:
        cube.delete(turn.id)
    cube.maintenance.set_retention([{"name": "deleted sessions", "forget_deleted": True}])
    (expiry,) = cube.maintenance.apply_retention()
    assert sorted(expiry.ids) == sorted(t.id for t in turns)
    assert [m.id for m in cube.list(ANY)] == [keep[0].id]
    assert cube.history(keep[0].id)


def test_rules_are_checked_and_the_old_ones_kept(cube):
    cube.maintenance.set_retention([{"name": "a", "keep_days": 7}])
    for bad in (
        [{"name": "b"}],  # keeps nothing, forgets nothing: says so
        [{"name": "b", "keep_days": -1}],
        [{"name": "b", "keep_days": 1, "filters": {"colour": "red"}}],
        [{"name": "b", "keep_days": 1}, {"name": "b", "keep_last": 3}],
        {"name": "b", "keep_days": 1},
    ):
        with pytest.raises(InvalidInputError):
            cube.maintenance.set_retention(bad)
    assert [r.name for r in cube.maintenance.retention] == ["a"]


def test_an_expiry_is_audited_by_ids_and_count(tmp_path, embedder):
    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        cube = os_.create_cube("team")
        clock = {"now": START}
        cube.maintenance.context.clock = lambda: clock["now"]
        old = cube.add("the zq7retained secret", scope={"user": "ana"})
        cube.maintenance.set_retention([{"name": "week", "keep_days": 7}])
        clock["now"] = START + timedelta(days=8)
        cube.maintenance.lifecycle()
        (entry,) = [e for e in os_.access.audit(cube="team") if e.action == "forget"]
        assert entry.detail == {"count": 1, "ids": [old.id], "derived": [], "rule": "week"}
        assert "zq7retained" not in entry.model_dump_json()


def test_rules_live_in_the_cube_for_every_process(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as one:
        one.maintenance.set_retention([{"name": "week", "keep_days": 7}])
        with MemCube.open(tmp_path / "c", embedder=embedder) as two:
            assert [r.name for r in two.maintenance.retention] == ["week"]
            assert [r.name for r in two.maintenance.context.governance.retention()] == ["week"]


def test_policy_and_rules_set_at_once_by_two_processes_are_both_kept(tmp_path, embedder):
    """The manifest is read, changed and written under a lock: a redaction policy and
    retention rules set at the same moment from two cube objects (two processes' views of
    one folder) both stay."""
    import threading

    path = tmp_path / "c"
    with (
        MemCube.create(path, embedder=embedder) as one,
        MemCube.open(path, embedder=embedder) as two,
    ):
        for n in range(20):
            rules = threading.Thread(
                target=two.maintenance.set_retention,
                args=([{"name": f"r{n}", "keep_days": n + 1}],),
            )
            rules.start()
            one.maintenance.set_redaction({"email": "mask" if n % 2 else "hash"})
            rules.join()
            assert [r.name for r in one.maintenance.retention] == [f"r{n}"]
            assert one.maintenance.redaction.email == ("mask" if n % 2 else "hash")
