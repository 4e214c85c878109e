"""Property tests: any sequence of writes keeps get, history, count and search consistent."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from cubemem import MemCube, NotFoundError, Status
from cubemem.model import Filters

EVERYTHING = Filters.everything()

words = st.sampled_from(
    ["tea", "cello", "boat", "Miso", "peanuts", "La Palma", "garden", "chess", "rain", "Bach"]
)
texts = st.lists(words, min_size=1, max_size=6).map(" ".join)
users = st.sampled_from(["ana", "ben", None])
tags = st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True)


class CubeMachine(RuleBasedStateMachine):
    """Drives a real cube and a plain dict model side by side."""

    ids = Bundle("ids")
    embedder = None

    @initialize()
    def open_cube(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.cube = MemCube.create(Path(self._tmp.name) / "c", embedder=self.embedder)
        self.model: dict[str, dict] = {}

    @rule(target=ids, text=texts, user=users, tag=tags)
    def add(self, text, user, tag):
        item = self.cube.add(text, scope={"user": user}, tags=tag)
        self.model[item.id] = {
            "versions": [(text, Status.ACTIVE)],
            "status": Status.ACTIVE,
            "user": user,
        }
        return item.id

    @rule(id=ids, text=texts)
    def update(self, id, text):
        entry = self.model.get(id)
        if entry is None or entry["status"] is Status.DELETED:
            return
        self.cube.update(id, text)
        entry["versions"].append((text, entry["status"]))

    def _status(self, id, status):
        """A change of status is a version of its own (history is append-only)."""
        entry = self.model[id]
        if entry["status"] is not status:
            entry["versions"].append((entry["versions"][-1][0], status))
            entry["status"] = status

    @rule(id=ids)
    def delete(self, id):
        if id in self.model:
            self.cube.delete(id)
            self._status(id, Status.DELETED)

    @rule(id=ids)
    def restore(self, id):
        if id in self.model:
            self.cube.restore(id)
            self._status(id, Status.ACTIVE)

    @rule(id=consumes(ids))
    def purge(self, id):
        if id in self.model:
            self.cube.delete(id, purge=True)
            del self.model[id]

    @invariant()
    def get_and_history_match(self):
        for id, entry in self.model.items():
            item = self.cube.get(id)
            assert item.content == entry["versions"][-1][0]
            assert item.status is entry["status"]
            assert item.version == len(entry["versions"])
            history = self.cube.history(id)
            assert [(v.content, v.status) for v in history] == entry["versions"]
            assert [v.version for v in history] == list(range(1, item.version + 1))

    @invariant()
    def counts_match(self):
        active = [i for i, e in self.model.items() if e["status"] is Status.ACTIVE]
        assert self.cube.count() == len(active)
        assert self.cube.count(EVERYTHING) == len(self.model)
        assert self.cube.count({"user": "ana"}) == sum(
            1 for i in active if self.model[i]["user"] == "ana"
        )

    @invariant()
    def search_sees_exactly_the_active_memories(self):
        active = {i for i, e in self.model.items() if e["status"] is Status.ACTIVE}
        if not active:
            return
        found = {h.id for h in self.cube.search("tea cello boat rain", k=len(self.model) + 5)}
        assert found <= active
        for id in list(active)[:2]:
            text = self.model[id]["versions"][-1][0]
            assert id in {h.id for h in self.cube.search(text, k=len(active))}

    def teardown(self):
        purged = set()
        for id in list(self.model):
            try:
                self.cube.get(id)
            except NotFoundError:
                purged.add(id)
        assert not purged
        self.cube.close()
        self._tmp.cleanup()


def test_any_sequence_of_writes_stays_consistent(embedder):
    CubeMachine.embedder = embedder
    runner = CubeMachine.TestCase()
    runner.settings = settings(
        max_examples=12,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    runner.runTest()


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    entries=st.lists(st.tuples(texts, users, tags), min_size=1, max_size=8),
    updates=st.lists(st.tuples(st.integers(0, 7), texts), max_size=4),
    deletes=st.lists(st.integers(0, 7), max_size=3),
)
def test_export_then_import_is_identity(embedder, entries, updates, deletes):
    with tempfile.TemporaryDirectory() as tmp:
        cube = MemCube.create(Path(tmp) / "a", embedder=embedder)
        items = [cube.add(text, scope={"user": u}, tags=t) for text, u, t in entries]
        for index, text in updates:
            cube.update(items[index % len(items)].id, text)
        for index in deletes:
            cube.delete(items[index % len(items)].id)
        cube.search("tea", k=3)  # usage counters travel too
        archive = cube.export(Path(tmp) / "cube.zip")
        copy = MemCube.import_(archive, Path(tmp) / "b", embedder=embedder)
        assert copy.id == cube.id and copy.manifest == cube.manifest
        original = list(cube.iter(EVERYTHING))
        assert list(copy.iter(EVERYTHING)) == original
        for item in original:
            assert copy.history(item.id) == cube.history(item.id)
        query = entries[0][0]
        assert [h.id for h in copy.search(query, k=5)] == [h.id for h in cube.search(query, k=5)]
        cube.close()
        copy.close()
