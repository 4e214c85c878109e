"""Entities and typed relations from the LLM extractor, in the same call that extracts facts:
each fact may name its subject, a relation and its object; the graph resolves both ends and
labels the relation with it."""

from __future__ import annotations

import json

from cubemem.extract import LLMExtractor, parse_facts
from cubemem.llm import Completion


class Scripted:
    """A ``ChatClient`` answering with a given text (the protocol, not a mock of cubemem)."""

    name = "scripted"

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def complete(self, messages, *, schema=None) -> Completion:
        return Completion(self.answer)


FACTS = {
    "facts": [
        {
            "text": "Ana moved to Porto in 2021",
            "subject": "Ana",
            "relation": "Lives In",
            "object": "Porto",
            "kind": "event",
            "time": "2021-06-01",
            "source_ids": ["t1"],
        },
        {
            "text": "Ana's climbing partner is Ben",
            "subject": "Ana",
            "relation": "climbs_with",
            "object": "ben",
            "source_ids": ["t2"],
        },
    ]
}


def test_relations_are_parsed_and_normalised():
    facts = parse_facts(json.dumps(FACTS))
    assert [(f.subject, f.relation, f.object) for f in facts] == [
        ("Ana", "lives_in", "Porto"),
        ("Ana", "climbs_with", "ben"),
    ]


def test_the_graph_labels_relations_from_the_same_call(cube):
    chat = Scripted(json.dumps(FACTS))
    extractor = LLMExtractor(chat)
    cube.maintenance.extractor = extractor
    cube.add_messages(
        [
            {"speaker": "Ana", "text": "We finally moved, the new flat in Porto is lovely"},
            {"speaker": "Ana", "text": "and I climb with ben every week"},
        ],
        scope={"user": "ana"},
        session="s1",
        timestamp="2021-06-02T10:00:00Z",
    )
    # entities and relations came with the facts: one extraction call for the window (the
    # decider's call, placing a fact among the existing ones, is its own)
    assert extractor.usage["calls"] == 1 and extractor.usage["facts"] == 2
    kinds = {(r.target.name, r.kind) for r in cube.relations("Ana", filters={"user": "ana"})}
    assert ("Porto", "lives_in") in kinds
    assert any(name.lower() == "ben" and kind == "climbs_with" for name, kind in kinds)
    fact = next(m for m in cube.list({"user": "ana"}) if m.content.startswith("Ana moved"))
    assert fact.metadata["relation"] == "lives_in" and fact.metadata["object"] == "Porto"
