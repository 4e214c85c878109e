"""Two timelines: valid time (``as_of``) and transaction time (``known_at``).

The property test drives a real cube with random writes under a random clock and compares
every search on either timeline, and both at once, with a brute-force answer computed from a
plain model of what each write means (not from the cube's own history)."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule

from cubemem import InvalidInputError, MemCube, Status

START = datetime(2020, 1, 1, tzinfo=UTC)
QUERY = "fact"


def hashed(texts: list[str]) -> list[np.ndarray]:
    """A small deterministic embedder: words hashed into 32 dimensions (never all zero)."""
    out = []
    for text in texts:
        vector = np.zeros(32, dtype=np.float32)
        vector[0] = 0.1
        for word in text.lower().split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 32] += 1.0
        out.append(vector / np.linalg.norm(vector))
    return out


words = st.sampled_from(["fact", "Ana", "Lisbon", "Porto", "Acme", "cello", "boat", "rain"])
texts = st.lists(words, min_size=1, max_size=4).map(" ".join)
days = st.integers(min_value=1, max_value=40).map(lambda d: timedelta(days=d))
users = st.sampled_from(["ana", "ben"])


class Timelines(RuleBasedStateMachine):
    """A real cube and, per memory, the snapshots its writes recorded: (recorded at, status,
    valid from, valid to, text, user)."""

    ids = Bundle("ids")

    @initialize()
    def open_cube(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.cube = MemCube.create(Path(self._tmp.name) / "c", embedder=hashed)
        self.now = START
        self.cube.maintenance.context.clock = lambda: self.now
        self.model: dict[str, list[tuple]] = {}

    def teardown(self):
        self.cube.close()
        self._tmp.cleanup()

    def _tick(self, by: timedelta) -> None:
        self.now += by

    def _record(self, id_, status, valid_from, valid_to, text, user):
        self.model.setdefault(id_, []).append((self.now, status, valid_from, valid_to, text, user))

    @rule(target=ids, text=texts, user=users, tick=days, back=days, ends=st.booleans(), span=days)
    def add(self, text, user, tick, back, ends, span):
        self._tick(tick)
        valid_from = self.now - back
        valid_to = valid_from + span if ends else None
        item = self.cube.add(text, scope={"user": user}, valid_from=valid_from, valid_to=valid_to)
        self._record(item.id, Status.ACTIVE, valid_from, valid_to, text, user)
        return item.id

    @rule(id=ids, text=texts, tick=days)
    def correct(self, id, text, tick):
        """``update`` without ``valid_from``: a new version of the same memory."""
        self._tick(tick)
        _, status, start, end, _, user = self.model[id][-1]
        if status is Status.DELETED:
            with pytest.raises(InvalidInputError):
                self.cube.update(id, text)
            return
        self.cube.update(id, text)
        self._record(id, status, start, end, text, user)

    @rule(target=ids, id=ids, text=texts, tick=days, after=days)
    def change(self, id, text, tick, after):
        """``update(valid_from=T)``: a successor from T; the old one ends at T."""
        self._tick(tick)
        _, status, start, end, old_text, user = self.model[id][-1]
        at = start + after
        if status is not Status.ACTIVE:
            with pytest.raises(InvalidInputError):
                self.cube.update(id, text, valid_from=at)
            return id
        new = self.cube.update(id, text, valid_from=at)
        assert new.id != id and new.parent_id == id
        ended = at if end is None else min(at, end)
        self._record(id, Status.SUPERSEDED, start, ended, old_text, user)
        self._record(new.id, Status.ACTIVE, at, None, text, user)
        return new.id

    @rule(id=ids, tick=days, after=days)
    def invalidate(self, id, tick, after):
        self._tick(tick)
        _, status, start, _, text, user = self.model[id][-1]
        at = start + after
        if status is Status.DELETED:
            with pytest.raises(InvalidInputError):
                self.cube.invalidate(id, at=at)
            return
        self.cube.invalidate(id, at=at)
        self._record(id, status, start, at, text, user)

    @rule(id=ids, tick=days)
    def delete(self, id, tick):
        self._tick(tick)
        _, status, start, end, text, user = self.model[id][-1]
        self.cube.delete(id)
        if status is not Status.DELETED:
            self._record(id, Status.DELETED, start, end, text, user)

    # -- the brute-force answers ----------------------------------------------------------
    def _expected(self, as_of, known_at, user):
        out = set()
        for id_, snapshots in self.model.items():
            seen = [s for s in snapshots if known_at is None or s[0] <= known_at]
            if not seen:
                continue
            _, status, start, end, text, owner = seen[-1]
            if user is not None and owner != user:
                continue
            if as_of is not None:
                if (
                    status in (Status.ACTIVE, Status.SUPERSEDED)
                    and start <= as_of
                    and (end is None or as_of < end)
                ):
                    out.add((id_, text))
                continue
            moment = self.now if known_at is None else known_at
            if status is Status.ACTIVE and (end is None or end > moment):
                out.add((id_, text))
        return out

    @rule(
        back_valid=st.one_of(st.none(), st.integers(0, 400)),
        back_known=st.one_of(st.none(), st.integers(0, 400)),
        user=st.one_of(st.none(), users),
    )
    def search_matches_brute_force(self, back_valid, back_known, user):
        as_of = None if back_valid is None else self.now - timedelta(days=back_valid)
        known_at = None if back_known is None else self.now - timedelta(days=back_known)
        found = self.cube.search(
            QUERY,
            k=500,
            as_of=as_of,
            known_at=known_at,
            filters=None if user is None else {"user": user},
        )
        assert {(r.id, r.content) for r in found} == self._expected(as_of, known_at, user)


Timelines.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_timelines_match_brute_force = Timelines.TestCase


# -- written cases ----------------------------------------------------------------------------
@pytest.fixture
def timed(tmp_path):
    cube = MemCube.create(tmp_path / "c", embedder=hashed)
    clock = {"now": START}
    cube.maintenance.context.clock = lambda: clock["now"]
    yield cube, clock
    cube.close()


def test_change_of_fact_keeps_the_old_fact_true_before(timed):
    cube, clock = timed
    lisbon = cube.add("Ana lives in Lisbon", valid_from=datetime(2015, 3, 1, tzinfo=UTC))
    clock["now"] = datetime(2022, 1, 1, tzinfo=UTC)
    porto = cube.update(lisbon.id, "Ana lives in Porto", valid_from="2021-06-01T00:00:00+00:00")
    old = cube.get(lisbon.id)
    assert old.status is Status.SUPERSEDED and old.superseded_by == porto.id
    assert old.valid_to == datetime(2021, 6, 1, tzinfo=UTC) == porto.valid_from
    where = "where does Ana live"
    assert [r.content for r in cube.search(where)] == ["Ana lives in Porto"]
    assert [r.content for r in cube.search(where, as_of="2021-05-31")] == ["Ana lives in Lisbon"]
    assert [r.content for r in cube.search(where, as_of="2021-06-01")] == ["Ana lives in Porto"]
    # the cube learnt of the move in 2022: what it believed at the end of 2021 about July
    before = cube.search(where, known_at="2021-12-31", as_of="2021-07-01")
    assert [r.content for r in before] == ["Ana lives in Lisbon"]
    assert [r.content for r in cube.search(where, known_at="2021-12-31")] == ["Ana lives in Lisbon"]
    both = {r.content for r in cube.search(where, include_superseded=True)}
    assert both == {"Ana lives in Lisbon", "Ana lives in Porto"}
    assert len(cube.history(lisbon.id)) == 2  # nothing deleted by a change of fact


def test_invalidate_ends_a_fact_without_a_successor(timed):
    cube, clock = timed
    job = cube.add("Ana works at Acme")
    clock["now"] = START + timedelta(days=100)
    ended = cube.invalidate(job.id, at=START + timedelta(days=50))
    assert ended.id == job.id and ended.version == 2 and ended.status is Status.ACTIVE
    assert cube.search("Acme") == []
    assert [r.id for r in cube.search("Acme", as_of=START + timedelta(days=10))] == [job.id]
    assert [r.id for r in cube.search("Acme", include_superseded=True)] == [job.id]
    with pytest.raises(InvalidInputError, match="cannot end"):
        cube.invalidate(job.id, at=START - timedelta(days=1))


def test_known_at_sees_what_was_deleted_later_and_not_what_was_added(timed):
    cube, clock = timed
    first = cube.add("the boat is blue")
    clock["now"] = START + timedelta(days=10)
    cube.update(first.id, "the boat is red")
    clock["now"] = START + timedelta(days=20)
    cube.delete(first.id)
    cube.add("the boat is sold")
    at = cube.search("boat", known_at=START + timedelta(days=5))
    assert [(r.content, r.item.version) for r in at] == [("the boat is blue", 1)]
    at = cube.search("boat", known_at=START + timedelta(days=15), min_score=0.0)
    assert [r.content for r in at] == ["the boat is red"]
    assert [r.content for r in cube.search("boat")] == ["the boat is sold"]


def test_times_without_an_offset_are_utc_everywhere(timed):
    cube, _ = timed
    item = cube.add("rain in Porto", valid_from=datetime(2019, 5, 1), valid_to="2019-06-01")
    assert item.valid_from == datetime(2019, 5, 1, tzinfo=UTC)
    assert item.valid_to == datetime(2019, 6, 1, tzinfo=UTC)
    assert [r.id for r in cube.search("rain", as_of=datetime(2019, 5, 15))] == [item.id]
    assert cube.search("rain", as_of="2019-06-01T00:00:00") == []


def test_every_memory_has_a_valid_time(timed):
    cube, _ = timed
    fact = cube.add("Ana likes tea")
    turn = cube.add_messages([{"speaker": "Ana", "text": "hi"}], timestamp="2019-02-01")[0]
    assert fact.valid_from == START and turn.valid_from == datetime(2019, 2, 1, tzinfo=UTC)
    assert fact.recorded_at == START == turn.provenance.created_at
    # a turn is findable as of any moment after it occurred, never before
    assert [r.id for r in cube.search("hi", as_of="2019-03-01")] == [turn.id]
    assert cube.search("hi", as_of="2019-01-01") == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, i: c.add("x", valid_from="2020-02-01", valid_to="2020-01-01"), "after"),
        (lambda c, i: c.add({"content": "x", "valid_to": "2019-01-01"}), "after valid_from"),
        (lambda c, i: c.search("x", as_of="last week"), "ISO 8601"),
        (lambda c, i: c.search("x", known_at=3), "ISO 8601"),
        (lambda c, i: c.update(i, "y", valid_from="2019-01-01"), "must come after"),
        (lambda c, i: c.invalidate(i, at="soon"), "ISO 8601"),
    ],
)
def test_bad_times_are_refused_and_nothing_changes(timed, snapshot, call, message):
    cube, _ = timed
    item = cube.add("Ana likes tea")
    before = snapshot(cube)
    with pytest.raises(InvalidInputError, match=message):
        call(cube, item.id)
    assert snapshot(cube) == before


def test_a_held_change_of_fact_supersedes_the_old_fact_once_approved(tmp_path, embedder):
    from cubemem import MemoryOS

    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        os_.create_cube("team")
        os_.access.create_agent("intern", trust=0.1)
        os_.access.grant("intern", "team", "write")
        os_.access.create_agent("lead", trust=1.0)
        os_.access.grant("lead", "team", "admin")
        lead = os_.as_agent("lead").open_cube("team")
        old = lead.add("Ana lives in Lisbon", valid_from="2015-01-01")
        held = (
            os_.as_agent("intern")
            .open_cube("team")
            .update(old.id, "Ana lives in Porto", valid_from="2021-06-01")
        )
        assert held.status is Status.QUARANTINED and held.parent_id == old.id
        assert lead.get(old.id).status is Status.ACTIVE  # nothing changes before review
        lead.approve(held.id)
        before = lead.get(old.id)
        assert before.status is Status.SUPERSEDED and before.superseded_by == held.id
        assert before.valid_to == datetime(2021, 6, 1, tzinfo=UTC)
        assert [r.content for r in lead.search("where does Ana live")] == ["Ana lives in Porto"]
        then = lead.search("where does Ana live", as_of="2020-01-01")
        assert [r.content for r in then] == ["Ana lives in Lisbon"]
