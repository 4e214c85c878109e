"""Redaction of every stored or embedded string, names included: metadata keys, tags,
speakers (of turns and of extracted facts), scope.user and scope.session, a keyed memory's
namespace and key. Names are hashed (two users stay two) and a lookup by the same name finds
them: filters, keyed lookups, a forget by user, an agent scoped to that user."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cubemem import MemCube, MemoryOS, RedactionPolicy
from cubemem.embed import FunctionEmbedder

ANA = "zq7.ana.souza@example.com"
BEN = "qx9.ben.okafor@example.org"
SECRETS = (ANA, BEN, "ana.souza", "ben.okafor")


def _bytes_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


class Recording:
    """A deterministic embedder that keeps every text it was sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts):
        self.seen += list(texts)
        rng = [np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(32) for t in texts]
        return [v / np.linalg.norm(v) for v in rng]


def _facts(turns):
    return [{"content": f"likes tea ({t.content})", "speaker": t.provenance.speaker} for t in turns]


def test_every_name_is_redacted_and_found_again_by_the_same_name(tmp_path):
    recording = Recording()
    embedder = FunctionEmbedder(recording, name="recording", dimension=32)
    path = tmp_path / "cube"
    with MemCube.create(path, embedder=embedder) as cube:
        cube.maintenance.set_redaction(RedactionPolicy.all("mask"))
        cube.maintenance.extractor = _facts
        ana = {"user": ANA, "session": f"support {ANA}"}
        added = cube.add(
            "prefers e-mail", scope=ana, tags=[f"contact {ANA}"], metadata={ANA: "primary"}
        )
        turns = cube.add_messages(
            [{"speaker": ANA, "text": "I like green tea"}], scope={"user": ANA}, session=ANA
        )
        put = cube.put((ANA, "prefs"), BEN, "drinks coffee", scope={"user": BEN})
        bens = cube.add("plays chess", scope={"user": BEN})
        cube.scheduler.wait(timeout=30)

        # what is stored has no name in clear; two users stay two
        assert added.scope.user.startswith("[EMAIL:") and added.scope.user != bens.scope.user
        assert ANA not in added.scope.session and added.scope.session.startswith("support ")
        assert added.tags == [f"contact {added.scope.user}"]
        assert list(added.metadata) == [added.scope.user]
        assert turns[0].provenance.speaker == added.scope.user
        assert put.namespace == (added.scope.user, "prefs") and put.key == bens.scope.user
        facts = [i for i in cube.list({"user": ANA}) if i.provenance.source == "extract"]
        assert facts and facts[0].provenance.speaker == added.scope.user

        # the same names find them
        assert {i.id for i in cube.list({"user": ANA})} >= {added.id, turns[0].id}
        assert [i.id for i in cube.list({"session": f"support {ANA}"})] == [added.id]
        assert [i.id for i in cube.list({"tags": [f"contact {ANA}"]})] == [added.id]
        assert [i.id for i in cube.list({"metadata": {ANA: "primary"}})] == [added.id]
        assert cube.lookup((ANA, "prefs"), BEN).id == put.id
        assert cube.namespaces((ANA,)) == [put.namespace]
        hits = cube.search("tea", filters={"user": BEN}, k=5)
        assert {h.item.id for h in hits} <= {put.id, bens.id}

        gone = cube.forget(user=ANA)
        assert added.id in gone.ids and turns[0].id in gone.ids
        assert cube.count({"user": BEN}) == 2
    on_disk = _bytes_of(path)
    for secret in SECRETS:
        assert secret.encode() not in on_disk
        assert not [t for t in recording.seen if secret in t]  # nor sent to the embedder


def test_a_forget_by_user_also_takes_what_was_stored_before_the_policy(tmp_path, embedder):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as cube:
        before = cube.add("joined in March", scope={"user": ANA})
        cube.maintenance.set_redaction({"email": "mask"})
        after = cube.add("left in May", scope={"user": ANA})
        assert before.scope.user == ANA and after.scope.user != ANA
        assert sorted(cube.forget(user=ANA).ids) == sorted([before.id, after.id])


def test_an_agent_scoped_to_a_redacted_user_reads_and_writes_its_memories(tmp_path, embedder):
    with MemoryOS(tmp_path / "os", embedder=embedder) as os_:
        os_.create_cube("team")
        os_.open_cube("team").maintenance.set_redaction(RedactionPolicy.all("mask"))
        os_.access.create_agent("bot", trust=0.9)
        os_.access.grant("bot", "team", "admin", scope={"user": ANA})
        bot = os_.as_agent("bot").open_cube("team")
        mine = bot.add("prefers calls", scope={"user": ANA})
        assert mine.scope.user.startswith("[EMAIL:")
        assert [i.id for i in bot.list({"user": ANA})] == [mine.id]
        assert bot.get(mine.id).id == mine.id
        assert bot.forget(user=ANA).ids == [mine.id]
