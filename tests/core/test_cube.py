"""MemCube's public API on the real embedded store and the real MiniLM embedder."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest

from cubemem import (
    InvalidInputError,
    MemCube,
    MemoryInput,
    NotFoundError,
    Scope,
    Status,
)

TURNS = [
    {"speaker": "Ana", "text": "I adopted a grey tabby and named her Miso", "id": "D1:1"},
    {"speaker": "Ben", "text": "What does she like to eat?", "id": "D1:2"},
    {"speaker": "Ana", "text": "Tuna, every single day", "id": "D1:3"},
]


def test_add_returns_a_stored_item_with_provenance(cube):
    item = cube.add("Mira is allergic to peanuts", scope={"user": "ana"}, tags=["health"])
    assert cube.get(item.id) == item
    assert item.cube == cube.id
    assert item.scope == Scope(user="ana")
    assert item.tags == ["health"]
    assert item.version == 1 and item.status is Status.ACTIVE
    assert item.provenance.source == "api"


def test_add_many_embeds_in_batches_and_keeps_order(cube):
    texts = [f"fact number {i} about the garden" for i in range(300)]
    items = cube.add(texts, scope={"user": "ana"})
    assert [i.content for i in items] == texts
    assert cube.count() == 300
    assert [i.id for i in cube.list(limit=5, offset=10)] == [i.id for i in items[10:15]]


def test_search_finds_the_relevant_memory(cube):
    cube.add(["The sky was grey over Lisbon", "Mira is allergic to peanuts", "Tom plays chess"])
    hits = cube.search("what is Mira allergic to?", k=2)
    assert hits[0].content == "Mira is allergic to peanuts"
    assert hits[0].dense_score is not None and hits[0].lexical_score is not None
    assert hits[0].score >= hits[1].score
    assert cube.get(hits[0].id).usage.hits == 1


def test_add_messages_keeps_speaker_session_time_and_source_ids(cube):
    items = cube.add_messages(TURNS, session="s1", timestamp="2023-05-08T13:56:00")
    assert [i.provenance.source_ids for i in items] == [["D1:1"], ["D1:2"], ["D1:3"]]
    assert [i.provenance.speaker for i in items] == ["Ana", "Ben", "Ana"]
    assert all(i.scope.session == "s1" for i in items)
    assert items[0].provenance.occurred_at == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    # The answer turn is found by words of the question before it (its session neighbour).
    answer = next(h for h in cube.search("eat", k=3) if h.id == items[2].id)
    assert answer.lexical_score is not None and answer.lexical_score > 0


def test_add_messages_stores_a_message_id_once(tmp_path, embedder):
    """A message sent again (a retried call, a re-run quickstart, another process) is the same
    memory: by message id within its user, agent and session; without an id, a new one."""
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder) as cube:
        first = cube.add_messages(TURNS, session="s1")
        again = cube.add_messages(
            [*TURNS, {"speaker": "Ben", "text": "Sure", "id": "D1:4"}], session="s1"
        )
        assert [i.id for i in again[:3]] == [i.id for i in first]
        queued = cube.add_messages(TURNS[:1], session="s1", wait=False)
        assert queued == [first[0].id]
        other = cube.add_messages(TURNS[:1], session="s2")  # another session: another memory
        assert other[0].id != first[0].id
        ana = cube.add_messages(TURNS[:1], session="s1", scope={"user": "ana"})
        assert ana[0].id != first[0].id
        cube.add_messages([{"speaker": "Ana", "text": "no id"}] * 2, session="s1")
        with pytest.raises(InvalidInputError, match="appears twice"):
            cube.add_messages([TURNS[0], TURNS[0]], session="s3")
        assert cube.scheduler.wait(timeout=30)
        assert cube.count() == 4 + 1 + 1 + 2
    with MemCube.open(path, embedder=embedder) as reopened:  # another process's retry
        reopened.add_messages(TURNS, session="s1")
        assert reopened.count() == 8


def test_filters_narrow_the_searched_subset(cube):
    cube.add("Ana likes green tea", scope={"user": "ana"}, tags=["food"])
    cube.add("Ben likes green tea", scope={"user": "ben"}, tags=["food", "drink"])
    cube.add("Ben likes jazz", scope={"user": "ben", "session": "s2"}, metadata={"mood": "calm"})
    assert {h.content for h in cube.search("green tea", filters={"user": "ana"})} == {
        "Ana likes green tea"
    }
    assert [h.content for h in cube.search("tea", filters={"tags": ["drink"]})] == [
        "Ben likes green tea"
    ]
    assert [h.content for h in cube.search("music", filters={"metadata": {"mood": "calm"}})] == [
        "Ben likes jazz"
    ]
    assert cube.count({"user": "ben"}) == 2
    assert cube.count({"session": "s2"}) == 1


def test_time_range_filters_use_the_event_time(cube):
    cube.add_messages([TURNS[0]], session="s1", timestamp="2023-01-01T10:00:00")
    cube.add_messages([TURNS[2]], session="s2", timestamp="2023-06-01T10:00:00")
    after = datetime(2023, 3, 1, tzinfo=UTC)
    assert [i.scope.session for i in cube.list({"after": after})] == ["s2"]
    assert [i.scope.session for i in cube.list({"before": after})] == ["s1"]


def test_expired_memories_leave_search(cube):
    past = datetime.now(UTC) - timedelta(minutes=1)
    cube.add([MemoryInput(content="the door code is 4711", expires_at=past)])
    cube.add("the wifi password is hunter2")
    assert [h.content for h in cube.search("code", k=5)] == ["the wifi password is hunter2"]
    assert cube.count({"include_expired": True}) == 2
    assert cube.stats()["expired"] == 1


def test_update_writes_a_new_version_and_keeps_history(cube):
    item = cube.add("Ana's cat is called Miso", tags=["pets"])
    new = cube.update(item.id, "Ana's cat is called Mochi", tags=["pets", "renamed"])
    assert new.id == item.id and new.version == 2
    assert [v.content for v in cube.history(item.id)] == [
        "Ana's cat is called Miso",
        "Ana's cat is called Mochi",
    ]
    assert cube.search("Mochi", k=1)[0].content == "Ana's cat is called Mochi"
    assert cube.count({"tags": ["renamed"]}) == 1


def test_delete_is_soft_until_purged(cube):
    item = cube.add("a secret")
    cube.delete(item.id)
    assert cube.get(item.id).status is Status.DELETED
    assert cube.search("secret") == []
    assert cube.count() == 0 and cube.count({"status": "deleted"}) == 1
    with pytest.raises(InvalidInputError):
        cube.update(item.id, "changed")
    cube.restore(item.id)
    assert cube.search("secret")[0].id == item.id
    cube.delete(item.id, purge=True)
    with pytest.raises(NotFoundError):
        cube.get(item.id)
    with pytest.raises(NotFoundError):
        cube.history(item.id)
    assert cube.search("secret") == []


def test_iteration_pages_through_everything(cube):
    cube.add([f"note {i}" for i in range(23)])
    assert [i.content for i in cube.iter(page_size=5)] == [f"note {i}" for i in range(23)]
    assert len(cube) == 23 == len(list(cube))


def test_stats(cube):
    cube.add(["one", "two"])
    cube.delete(cube.list()[0].id)
    stats = cube.stats()
    assert stats["memories"] == 2
    assert stats["by_status"]["deleted"] == 1 and stats["by_status"]["active"] == 1
    assert stats["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert stats["dimension"] == 384


async def test_async_twins(cube):
    item = await cube.aadd("Ana runs every morning", scope={"user": "ana"})
    await cube.aadd_messages(TURNS, session="s1")
    assert (await cube.aget(item.id)).content == item.content
    hits = await cube.asearch("who runs in the morning?", k=1, filters={"user": "ana"})
    assert hits[0].id == item.id
    await cube.aupdate(item.id, "Ana runs every evening")
    assert len(await cube.ahistory(item.id)) == 2
    await cube.adelete(item.id)
    await cube.arestore(item.id)
    assert await cube.acount() == 4
    assert len(await cube.alist(limit=2)) == 2
    assert (await cube.astats())["memories"] == 4


def test_context_manager_closes(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=embedder) as c:
        c.add("kept")
    with MemCube.open(tmp_path / "c", embedder=embedder) as again:
        assert [i.content for i in again.list()] == ["kept"]


def test_filtered_search_scores_small_subsets_exactly(cube):
    """A filter leaving a small subset is scored from stored vectors, not the index."""
    cube.add([f"note {i} about gardening" for i in range(450)], scope={"user": "ben"})
    target = cube.add("Ana keeps bees on her balcony", scope={"user": "ana"})
    cube.add("Ana repairs old radios", scope={"user": "ana"})
    hits = cube.search("who keeps bees?", k=2, filters={"user": "ana"})
    assert hits[0].id == target.id
    assert {h.item.scope.user for h in hits} == {"ana"}
    assert hits[0].dense_score > 0.3


def test_a_name_that_moved_to_maintenance_says_where_it_went(cube):
    with pytest.raises(AttributeError, match=r"cube\.maintenance\.extractor"):
        cube.extractor = lambda turns: []
    with pytest.raises(AttributeError, match=r"cube\.maintenance\.consolidate"):
        cube.consolidate()
    with pytest.raises(AttributeError, match=r"cubemem\.cube\.compose"):
        cube.compose  # noqa: B018
    cube.maintenance.extractor = lambda turns: ["a fact"]
    assert cube.maintenance.context.extractor is not None
    public = inspect.getmembers(type(cube))
    sync = [n for n, m in public if not n.startswith("_") and not inspect.iscoroutinefunction(m)]
    # 30 after the surface was written once; the timelines and the entity graph added one
    # operation each: invalidate, entities, relations, neighbourhood, merge/split_entity;
    # governance one: forget
    assert len(sync) <= 37, sync
