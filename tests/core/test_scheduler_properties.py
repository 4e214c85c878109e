"""Property tests: consolidation never loses source text and undo restores; lifecycle sweeps are
status changes that restore undoes."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cubemem import MemCube, Settings, Status
from cubemem.model import Filters, utcnow

EVERYTHING = Filters.everything()
counter = itertools.count()

FACTS = [
    "Ana lives in Porto",
    "Ana lives in Porto now",
    "Ana now lives in Porto",
    "Ana likes sardines",
    "Ana likes grilled sardines",
    "Bob lives in Lisbon",
    "The meeting is on Tuesday",
    "The meeting moved to Tuesday",
]
SLOW = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def fresh(tmp_path, embedder, **kwargs) -> MemCube:
    return MemCube.create(
        tmp_path / f"cube{next(counter)}", embedder=embedder, settings=Settings(**kwargs)
    )


def all_texts(cube: MemCube) -> set[str]:
    return {v.content for item in cube.iter(EVERYTHING) for v in cube.history(item.id)}


def active(cube: MemCube) -> dict[str, tuple[str, list[str]]]:
    return {i.id: (i.content, sorted(i.provenance.source_ids)) for i in cube.iter()}


@SLOW
@given(
    facts=st.lists(
        st.tuples(st.sampled_from(FACTS), st.sampled_from(["ana", "bob"])), min_size=1, max_size=8
    ),
    similarity=st.sampled_from([0.7, 0.8, 0.9]),
)
def test_consolidation_keeps_every_text_and_undo_restores(tmp_path, embedder, facts, similarity):
    cube = fresh(tmp_path, embedder, merge_similarity=similarity, merge_overlap=0.4)
    for n, (text, user) in enumerate(facts):
        cube.add({"content": text, "source_ids": [f"m{n}"]}, scope={"user": user})
    texts, sources = all_texts(cube), {s for _, (_, ids) in active(cube).items() for s in ids}
    before = active(cube)
    merges = cube.maintenance.consolidate()
    # nothing lost: every text and every source id is still in the cube
    assert all_texts(cube) >= texts
    after_sources = {s for i in cube.iter(EVERYTHING) for s in i.provenance.source_ids}
    assert after_sources >= sources
    assert cube.count(EVERYTHING) == len(facts)
    for merge in merges:
        survivor, merged = cube.get(merge.survivor), cube.get(merge.merged)
        assert merged.superseded_by == survivor.id and merged.status is Status.ARCHIVED
        assert survivor.scope.user == merged.scope.user
        assert set(merged.provenance.source_ids) <= set(cube.get(survivor.id).provenance.source_ids)
    # consolidating again changes nothing (idempotent)
    assert cube.maintenance.consolidate() == []
    for merge in reversed(merges):
        cube.maintenance.undo_merge(merge.merged)
    assert active(cube) == before
    cube.close()


@SLOW
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 400),  # expires in this many days (0: never)
            st.integers(0, 5),  # hits
            st.booleans(),  # pinned
        ),
        min_size=1,
        max_size=10,
    ),
    days_later=st.integers(0, 600),
)
def test_lifecycle_is_undoable_and_spares_pinned(tmp_path, embedder, rows, days_later):
    cube = fresh(tmp_path, embedder)
    now = utcnow()
    ids = []
    for n, (expires_days, hits, pin) in enumerate(rows):
        expires = now + timedelta(days=expires_days) if expires_days else None
        item = cube.add(
            {"content": f"memory number {n}", "expires_at": expires},
            tags=["pinned"] if pin else [],
        )
        for _ in range(hits):
            cube.maintenance.store.touch([item.id], now)
        ids.append(item.id)
    before = {i.id: i.model_dump() for i in cube.iter(EVERYTHING)}
    report = cube.maintenance.lifecycle(now=now + timedelta(days=days_later))
    archived = set(report.expired) | set(report.cold)
    for id_, (expires_days, _, pin) in zip(ids, rows, strict=True):
        item = cube.get(id_)
        expired = bool(expires_days) and expires_days <= days_later
        assert (id_ in report.expired) == expired
        if pin and not expired:
            assert item.status is Status.ACTIVE  # pinned memories never fade
        assert item.status is (Status.ARCHIVED if id_ in archived else Status.ACTIVE)
        assert item.version == (2 if id_ in archived else 1)  # an archive is a version
    for id_ in archived:
        cube.restore(id_)
    after = {i.id: i.model_dump() for i in cube.iter(EVERYTHING)}
    for id_, old in before.items():
        new = after[id_]
        assert new["version"] == (3 if id_ in archived else 1)
        assert {k: v for k, v in new.items() if k not in ("updated_at", "version")} == {
            k: v for k, v in old.items() if k not in ("updated_at", "version")
        }
    cube.close()
