"""Update decisions on extracted facts: ADD, UPDATE (a new version, old text in history),
DUPLICATE (no new memory, sources appended), CONTRADICT (the old fact superseded with its
validity closed) — with the decision and its reason on the version written."""

from __future__ import annotations

import json

from cubemem import Status
from cubemem.extract import LLMExtractor
from cubemem.llm import Completion
from cubemem.ops.decide import Verdict


class Scripted:
    name = "scripted"

    def __init__(self) -> None:
        self.answers: list[str] = []

    def complete(self, messages, *, schema=None) -> Completion:
        return Completion(self.answers.pop(0))


def facts(*items: tuple[str, str, str]) -> str:
    return json.dumps(
        {
            "facts": [
                {"text": text, "subject": subject, "kind": kind, "source_ids": ["t1"]}
                for text, subject, kind in items
            ]
        }
    )


def say(cube, client, text, answer, *, message_id, user="ben"):
    client.answers.append(answer)
    cube.add_messages(
        [{"speaker": user.title(), "text": text, "id": message_id}],
        session=f"s-{message_id}",
        scope={"user": user},
    )


def current_facts(cube, user="ben"):
    return [m for m in cube.list({"user": user}) if m.provenance.source == "extract"]


def test_add_update_duplicate_keep_one_current_fact_with_its_history(cube):
    client = Scripted()
    cube.maintenance.extractor = LLMExtractor(client, decide=False)
    say(cube, client, "I prefer tea", facts(("Ben prefers tea", "Ben", "preference")),
        message_id="m1")  # fmt: skip
    (tea,) = current_facts(cube)
    assert (tea.decision, tea.version) == ("ADD", 1)

    say(cube, client, "These days I prefer coffee",
        facts(("Ben now prefers coffee", "Ben", "preference")), message_id="m2")  # fmt: skip
    (now,) = current_facts(cube)  # "Ben prefers tea" and "... coffee" are not both current
    assert now.id == tea.id and now.content == "Ben now prefers coffee"
    assert (now.decision, now.version) == ("UPDATE", 2) and "same subject" in now.decision_reason
    assert now.provenance.source_ids == ["m1", "m2"] and now.valid_from is not None
    assert [v.content for v in cube.history(tea.id)] == [
        "Ben prefers tea",
        "Ben now prefers coffee",
    ]

    say(cube, client, "Coffee, yes", facts(("Ben now prefers coffee", "Ben", "preference")),
        message_id="m3")  # fmt: skip
    (again,) = current_facts(cube)
    assert (again.decision, again.version) == ("DUPLICATE", 3)
    assert again.content == "Ben now prefers coffee"
    assert again.provenance.source_ids == ["m1", "m2", "m3"]

    say(cube, client, "I play chess on Sundays",
        facts(("Ben plays chess on Sundays", "Ben", "event")), message_id="m4")  # fmt: skip
    assert len(current_facts(cube)) == 2  # a different fact is added


def test_a_contradiction_supersedes_the_old_fact_and_keeps_it_findable(cube):
    client = Scripted()
    cube.maintenance.extractor = LLMExtractor(client, decide=False)
    say(cube, client, "I live in Porto", facts(("Ana lives in Porto", "Ana", "fact")),
        message_id="a1", user="ana")  # fmt: skip

    def contradicts(fact, near):
        return (
            Verdict("CONTRADICT", near[0][0].id, "she said she moved") if near else Verdict("ADD")
        )

    cube.maintenance.decider = contradicts
    say(cube, client, "I moved to Lisbon", facts(("Ana lives in Lisbon", "Ana", "fact")),
        message_id="a2", user="ana")  # fmt: skip
    (lisbon,) = current_facts(cube, "ana")
    assert lisbon.content == "Ana lives in Lisbon" and lisbon.decision == "CONTRADICT"
    old = cube.get(
        lisbon.id
        if False
        else next(m.id for m in cube.list({"user": "ana", "status": "superseded"}))
    )
    assert old.status is Status.SUPERSEDED and old.superseded_by == lisbon.id
    assert old.valid_to is not None and old.decision_reason == "she said she moved"
    assert [v.status for v in cube.history(old.id)] == [Status.ACTIVE, Status.SUPERSEDED]
    now = [h.content for h in cube.search("where does Ana live?", filters={"user": "ana"})]
    assert "Ana lives in Porto" not in now and "Ana lives in Lisbon" in now
    before = cube.search("where does Ana live?", filters={"user": "ana"}, include_superseded=True)
    assert "Ana lives in Porto" in [h.content for h in before]


def test_a_replayed_extraction_changes_nothing(cube):
    client = Scripted()
    cube.maintenance.extractor = LLMExtractor(client, decide=False)
    say(cube, client, "I prefer tea", facts(("Ben prefers tea", "Ben", "preference")),
        message_id="m1")  # fmt: skip
    turn = next(m for m in cube.list({"user": "ben"}) if m.provenance.source == "message")
    before = [(m.id, m.version) for m in cube.list({"user": "ben"})]
    client.answers.append(facts(("Ben prefers tea", "Ben", "preference")))
    cube.maintenance.extract([turn.id])
    assert [(m.id, m.version) for m in cube.list({"user": "ben"})] == before


def test_an_llm_decider_decides_and_falls_back_to_the_rule(cube):
    from cubemem.extract import LLMDecider

    client = Scripted()
    cube.maintenance.extractor = LLMExtractor(client, decide=False)
    decider = LLMDecider(client)
    cube.maintenance.decider = decider
    # no close fact: ADD without asking the model
    say(cube, client, "I live in Porto", facts(("Ana lives in Porto", "Ana", "fact")),
        message_id="a1", user="ana")  # fmt: skip
    assert decider.usage["calls"] == 0
    client.answers.append(facts(("Ana lives in Lisbon", "Ana", "fact")))
    client.answers.append(
        'Sure: {"decision": "contradict", "target": "c1", "reason": "she moved to Lisbon"}'
    )
    cube.add_messages([{"speaker": "Ana", "text": "I moved to Lisbon", "id": "a2"}],
                      session="s-a2", scope={"user": "ana"})  # fmt: skip
    (current,) = current_facts(cube, "ana")
    assert (current.content, current.decision) == ("Ana lives in Lisbon", "CONTRADICT")
    assert current.decision_reason == "she moved to Lisbon"
    # an unusable answer: the similarity rule decides, and says why
    client.answers.append(facts(("Ana lives in Lisbon", "Ana", "fact")))
    client.answers.append("I think it is the same.")
    cube.add_messages([{"speaker": "Ana", "text": "Lisbon, yes", "id": "a3"}],
                      session="s-a3", scope={"user": "ana"})  # fmt: skip
    (same,) = current_facts(cube, "ana")
    assert same.decision == "DUPLICATE" and "model unusable" in same.decision_reason
    assert decider.usage == {"calls": 2, "fallbacks": 1, "prompt_tokens": 0,
                             "completion_tokens": 0}  # fmt: skip


def test_two_writers_extracting_the_same_fact_at_once_store_it_once(cube):
    import threading

    class Same:
        name = "same"

        def complete(self, messages, *, schema=None) -> Completion:
            return Completion(facts(("Ana lives in Porto", "Ana", "fact")))

    cube.maintenance.extractor = LLMExtractor(Same())
    barrier = threading.Barrier(2)
    errors = []

    def writer(n: int) -> None:
        try:
            for round_ in range(4):
                barrier.wait()
                cube.add_messages(
                    [{"speaker": "Ana", "text": f"I live in Porto ({n}.{round_})",
                      "id": f"w{n}-{round_}"}],
                    session=f"w{n}",
                    scope={"user": "ana"},
                )  # fmt: skip
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    (porto,) = current_facts(cube, "ana")  # one fact, not eight
    assert porto.content == "Ana lives in Porto"
    assert sorted(porto.provenance.source_ids) == sorted(
        f"w{n}-{r}" for n in (1, 2) for r in range(4)
    )  # every turn that said it is cited: no update was lost
    versions = [v.version for v in cube.history(porto.id)]
    assert versions == list(range(1, len(versions) + 1))  # append-only, no gaps


def test_the_extractors_model_decides_by_default(cube):
    client = Scripted()
    extractor = LLMExtractor(client)  # decide=True: the same model places its facts
    cube.maintenance.extractor = extractor
    say(cube, client, "I live in Porto", facts(("Ana lives in Porto", "Ana", "fact")),
        message_id="a1", user="ana")  # fmt: skip
    client.answers.append(facts(("Ana lives in Lisbon", "Ana", "fact")))
    client.answers.append('{"decision": "CONTRADICT", "target": "c1", "reason": "moved"}')
    cube.add_messages([{"speaker": "Ana", "text": "I moved to Lisbon", "id": "a2"}],
                      session="s-a2", scope={"user": "ana"})  # fmt: skip
    (current,) = current_facts(cube, "ana")
    assert (current.content, current.decision) == ("Ana lives in Lisbon", "CONTRADICT")
    assert extractor.decider is not None and extractor.decider.usage["calls"] == 1
    status = cube.scheduler.status().extraction[cube.name]
    assert status["decider_calls"] == 1 and status["calls"] == 2
