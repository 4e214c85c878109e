"""One API conformance suite over the three cube surfaces: a local ``MemCube``, the same cube
as an agent (``AgentCube``) and a cube on a real ``cubemem serve`` process (``RemoteCube``) —
and local cubes on the other engines (vectors in a Chroma server; everything in PostgreSQL).
Same calls, same answers, same error types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cubemem import (
    ConflictError,
    InvalidFilterError,
    InvalidInputError,
    MemCube,
    MemoryOS,
    NotFoundError,
    PermissionDeniedError,
    Settings,
    Status,
)
from cubemem.cube import CubeLike


@dataclass
class Surface:
    kind: str
    cube: Any
    settle: Callable[[list[str]], bool]


@pytest.fixture(params=["local", "chroma-server", "postgresql", "agent", "remote"])
def surface(request, tmp_path, embedder) -> Iterator[Surface]:
    if request.param in ("local", "chroma-server", "postgresql"):
        settings = Settings()
        if request.param == "postgresql":
            settings = Settings(store_url=request.getfixturevalue("postgres_url"))
        if request.param == "chroma-server":
            settings = Settings(store_url=request.getfixturevalue("chroma_url"))
        cube = MemCube.create(tmp_path / "c", embedder=embedder, settings=settings)
        yield Surface(request.param, cube, lambda ids: cube.scheduler.wait(ids, 30))
        cube.close()
    elif request.param == "agent":
        with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
            os_.create_cube("team")
            os_.access.create_agent("writer", trust=0.9)
            os_.access.grant("writer", "team", "write")
            cube = os_.as_agent("writer").open_cube("team")
            yield Surface("agent", cube, lambda ids: os_.scheduler.wait(ids, 30))
    else:
        team = request.getfixturevalue("team")
        client = team.agent("write")
        cube = client.open_cube(team.cube)
        yield Surface("remote", cube, lambda ids: cube.wait(ids, 30))
        client.close()


def test_every_surface_is_cube_like(surface):
    assert isinstance(surface.cube, CubeLike)


def test_both_timelines(surface):
    """A change of fact, an invalidation, and search as of a moment on either timeline."""
    cube = surface.cube
    lisbon = cube.add(
        "Ana lives in Lisbon", scope={"user": "ana"}, valid_from="2015-03-01T00:00:00Z"
    )
    known = datetime.now(UTC)
    porto = cube.update(lisbon.id, "Ana lives in Porto", valid_from="2021-06-01T00:00:00Z")
    assert porto.id != lisbon.id and porto.parent_id == lisbon.id
    assert cube.get(lisbon.id).valid_to == datetime(2021, 6, 1, tzinfo=UTC)
    where = "where does Ana live"
    assert [r.content for r in cube.search(where)] == ["Ana lives in Porto"]
    assert [r.content for r in cube.search(where, as_of="2020-01-01")] == ["Ana lives in Lisbon"]
    assert [r.content for r in cube.search(where, known_at=known)] == ["Ana lives in Lisbon"]
    ended = cube.invalidate(porto.id, at="2024-01-01T00:00:00Z")
    assert ended.id == porto.id and ended.valid_to == datetime(2024, 1, 1, tzinfo=UTC)
    assert cube.search(where) == []
    assert {r.content for r in cube.search(where, include_superseded=True)} == {
        "Ana lives in Lisbon",
        "Ana lives in Porto",
    }
    with pytest.raises(InvalidInputError):
        cube.search(where, as_of="some day")
    with pytest.raises(InvalidInputError):
        cube.invalidate(lisbon.id, at="2010-01-01T00:00:00Z")


def test_entities_relations_and_neighbourhoods(surface):
    cube = surface.cube
    hike = cube.add(
        "Ana Souza and Ben hiked in Sintra", scope={"user": "ana"}, valid_from="2018-05-01"
    )
    cube.add("Ben lives in Porto", scope={"user": "ana"}, valid_from="2020-01-01T00:00:00Z")
    cube.add("Ben Carter sells boats", scope={"user": "bob"})
    found = cube.entities("Ben", filters={"user": "ana"})
    assert [(e.name, e.memories, e.owner) for e in found] == [("Ben", 2, "ana")]
    assert {e.owner for e in cube.entities(name="ben")} == {"ana"}  # "Ben Carter" is bob's
    relations = cube.relations("Ana", filters={"user": "ana"})
    assert {(r.target.name, tuple(r.memory_ids)) for r in relations} == {
        ("Ben", (hike.id,)),
        ("Sintra", (hike.id,)),
    }
    around = cube.neighbourhood("Ana Souza", hops=2, filters={"user": "ana"})
    assert around.center.name == "Ana Souza"
    assert {e.name for e in around.entities} == {"Ana Souza", "Ben", "Sintra", "Porto"}
    then = cube.relations("Ben", as_of="2019-06-01T00:00:00Z", filters={"user": "ana"})
    assert {r.target.name for r in then} == {"Ana Souza", "Sintra"}  # not yet in Porto
    with pytest.raises(NotFoundError):
        cube.relations("Zanzibar")
    with pytest.raises(InvalidInputError):
        cube.neighbourhood("Ana", hops=9)
    if surface.kind in ("agent", "remote"):  # a writer: merges are for cube admins
        with pytest.raises(PermissionDeniedError):
            cube.merge_entities("Sintra", "Porto")
        return
    merged = cube.merge_entities("Sintra", "Porto")
    assert merged.name == "Porto" and merged.memories == 2 and len(merged.merged_from) == 1
    assert {e.name for e in cube.split_entity("Porto")} == {"Porto", "Sintra"}
    assert cube.entities(name="Sintra")[0].merged_from == []


def test_add_get_update_history_delete_restore(surface):
    cube = surface.cube
    item = cube.add("Ana prefers tea", scope={"user": "ana"}, tags=["drinks"], metadata={"n": 1})
    assert item.content == "Ana prefers tea" and item.version == 1
    assert cube.get(item.id).scope.user == "ana"
    new = cube.update(item.id, "Ana prefers green tea", expected_version=1)
    assert new.version == 2
    with pytest.raises(ConflictError):
        cube.update(item.id, "stale", expected_version=1)
    assert [v.content for v in cube.history(item.id)] == [
        "Ana prefers tea",
        "Ana prefers green tea",
    ]
    cube.delete(item.id)
    assert cube.get(item.id).status is Status.DELETED
    assert cube.search("what does Ana drink") == []
    assert cube.restore(item.id).status is Status.ACTIVE


def test_search_filters_and_min_score(surface):
    cube = surface.cube
    cube.add(["Ana plays the cello", "Ben plays the drums"], scope={"user": "ana"})
    cube.add("Ben plays the drums", scope={"user": "ben"})
    hits = cube.search("which instrument", k=5, filters={"user": "ana"})
    assert {h.item.content for h in hits} == {"Ana plays the cello", "Ben plays the drums"}
    assert all(0 <= h.relevance <= 1 for h in hits)
    assert cube.search("quantum chromodynamics lecture", min_score=0.9) == []
    with pytest.raises(InvalidFilterError):
        cube.search("x", filters={"colour": "red"})


def test_queued_writes_are_acknowledged_then_searchable(surface):
    cube = surface.cube
    ids = cube.add(["Ana moved to Lisbon", "Ana works as a nurse"], wait=False)
    assert len(ids) == 2 and all(isinstance(i, str) for i in ids)
    assert surface.settle(ids)
    assert cube.search("where does Ana live", k=1)[0].item.id == ids[0]


def test_idempotency_key_stores_once(surface):
    cube = surface.cube
    first = cube.add(["one fact", "two facts"], idempotency_key="call-1")
    again = cube.add(["one fact", "two facts"], idempotency_key="call-1")
    assert [i.id for i in first] == [i.id for i in again]
    assert cube.count() == 2
    with pytest.raises(ConflictError):
        cube.add(["other", "content"], idempotency_key="call-1")


def test_messages_keyed_memories_and_pages(surface):
    cube = surface.cube
    turns = cube.add_messages(
        [
            {"speaker": "Ana", "content": "I adopted a cat called Miso", "id": "m1"},
            {"speaker": "Ben", "content": "Lovely, what colour is she?", "id": "m2"},
        ],
        session="s1",
        timestamp="2024-05-08T10:00:00Z",
    )
    assert [t.provenance.speaker for t in turns] == ["Ana", "Ben"]
    assert turns[0].provenance.source_ids == ["m1"] and turns[0].scope.session == "s1"
    put = cube.put(
        ("prefs", "ana"), "drink", "Ana drinks tea", value={"drink": "tea"}, ttl=timedelta(hours=1)
    )
    assert cube.lookup(("prefs", "ana"), "drink").value == {"drink": "tea"}
    assert cube.lookup(("prefs", "ana"), "food") is None
    assert cube.namespaces(("prefs",)) == [("prefs", "ana")]
    assert cube.refresh([put.id])[0].expires_at >= put.expires_at
    assert [i.id for i in cube.list(limit=2)] == [turns[0].id, turns[1].id]
    assert [i.id for i in cube.list(limit=2, offset=2)] == [put.id]


def test_errors_are_the_same_types(surface):
    cube = surface.cube
    with pytest.raises(NotFoundError):
        cube.get("0" * 32)
    with pytest.raises(InvalidInputError):
        cube.add("   ")
    with pytest.raises(InvalidInputError):
        cube.search("x", k=0)
    with pytest.raises(NotFoundError):
        cube.update("0" * 32, "x")


async def test_async_twins(surface):
    cube = surface.cube
    item = await cube.aadd("Ana runs marathons")
    assert (await cube.aget(item.id)).content == "Ana runs marathons"
    hits = await cube.asearch("sport", k=1)
    assert hits[0].item.id == item.id
    assert (await cube.aupdate(item.id, "Ana runs half marathons")).version == 2


def test_core_memory_blocks(surface):
    """Core memory blocks over every surface: set, append, replace, the limit, versions, and
    recall leaving them out."""
    from cubemem.blocks import CoreMemory, is_core

    core = CoreMemory(surface.cube, user_id="ana", limit=60)
    core.set("persona", "You are Ana's assistant.")
    core.append("human", "Ana is vegetarian.")
    core.replace("human", "vegetarian", "vegan")
    with pytest.raises(InvalidInputError, match="limit of 60"):
        core.append("human", "She also " + "really " * 10 + "likes tea.")
    assert core.all() == {"persona": "You are Ana's assistant.", "human": "Ana is vegan."}
    assert "<human>\nAna is vegan.\n</human>" in core.render()
    human = surface.cube.lookup(("core_memory", "human"), "user:ana")
    assert [v.content for v in surface.cube.history(human.id)] == [
        "Ana is vegetarian.",
        "Ana is vegan.",
    ]
    assert is_core(human) and CoreMemory(surface.cube, user_id="bob").get("human") == ""


def test_forget(surface, request):
    """Forget on every surface: an admin erases a user's memories with what was derived; a
    writer is refused and nothing changes; the other user's memories stay."""
    cube = surface.cube
    if surface.kind in ("agent", "remote"):
        with pytest.raises(PermissionDeniedError, match="admin"):
            cube.forget(user="ana")
        if surface.kind == "remote":
            team = request.getfixturevalue("team")
            admin = team.agent("admin")
            cube = admin.open_cube(team.cube)
            request.addfinalizer(admin.close)
        else:
            return  # the agent surface's admin path: tests/shared/test_governance.py
    ana = cube.add(["Ana's code word is zq7conform", "Ana sings"], scope={"user": "ana"})
    cube.add("Bob likes tea", scope={"user": "bob"})
    surface.settle([i.id for i in ana])
    gone = cube.forget(user="ana")
    assert sorted(gone.ids) == sorted(i.id for i in ana) and gone.count == 2
    assert cube.count({"user": "ana", "status": ["active", "deleted", "archived"]}) == 0
    assert [r.content for r in cube.search("tea", filters={"user": "bob"})] == ["Bob likes tea"]
    with pytest.raises(NotFoundError):
        cube.get(ana[0].id)


def test_redaction(surface, request, tmp_path):
    """The cube's redaction policy (in its manifest) holds on every surface: what is written
    through it is stored, indexed and answered with the personal data masked."""
    from cubemem import RedactionPolicy
    from cubemem.manifest import read_manifest, write_manifest

    if surface.kind == "agent":
        folder = tmp_path / "os" / "team"
    elif surface.kind == "remote":
        team = request.getfixturevalue("team")
        folder = team.server.root / team.cube
    else:
        folder = tmp_path / "c"
    policy = RedactionPolicy.all("mask")
    write_manifest(folder, read_manifest(folder).model_copy(update={"redaction": policy}))
    cube = surface.cube
    added = cube.add("Ana's e-mail is zq7conf@example.com", scope={"user": "ana"})
    (turn,) = cube.add_messages(
        [{"speaker": "Ana", "text": "my card is 4111 1111 1111 1111"}], scope={"user": "ana"}
    )
    assert added.content == "Ana's e-mail is [EMAIL]"
    assert turn.content == "my card is [CARD]"
    surface.settle([added.id, turn.id])
    found = cube.search("Ana's e-mail", filters={"user": "ana"})
    assert "zq7conf" not in " ".join(r.content for r in found)
    assert cube.update(added.id, "Ana: zq7new@example.com").content == "Ana: [EMAIL]"
