"""Filters that narrow and never widen; a relevance in [0, 1] that can be thresholded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cubemem import Filters, InvalidFilterError, InvalidInputError
from cubemem.model import Status
from cubemem.render import DEFAULT_MIN_SCORE


def test_narrow_ands_every_key():
    bound = Filters.parse(
        {
            "user": "ana",
            "tags": ["food"],
            "after": datetime(2024, 1, 1, tzinfo=UTC),
            "metadata": {"year": {"$gte": 2020}},
            "namespace": ("memories",),
        }
    )
    call = {
        "tags": ["lunch"],
        "session": "s1",
        "after": datetime(2023, 1, 1, tzinfo=UTC),
        "before": datetime(2025, 1, 1, tzinfo=UTC),
        "metadata": {"year": {"$lt": 2024}, "kind": "note"},
        "namespace": ("memories", "ana"),
    }
    narrowed = bound.narrow(call)
    assert narrowed.user == "ana" and narrowed.session == "s1"
    assert narrowed.tags == ["food", "lunch"]
    assert narrowed.after == datetime(2024, 1, 1, tzinfo=UTC)  # the later bound wins
    assert narrowed.before == datetime(2025, 1, 1, tzinfo=UTC)
    assert narrowed.metadata == {"year": {"$gte": 2020, "$lt": 2024}, "kind": "note"}
    assert narrowed.namespace == ("memories", "ana")
    assert bound.narrow(None) is bound
    assert bound.narrow({"user": "ana"}).user == "ana"  # naming the bound value is fine


@pytest.mark.parametrize(
    "call",
    [
        {"user": "ben"},
        {"metadata": {"year": {"$gte": 1990}}},
        {"namespace": ("other",)},
        {"status": ["deleted"]},
    ],
)
def test_narrow_refuses_what_would_widen_or_replace(call):
    bound = Filters.parse(
        {"user": "ana", "metadata": {"year": {"$gte": 2020}}, "namespace": ("memories",)}
    ).narrow({"status": ["active", "archived"]})
    with pytest.raises(InvalidFilterError, match="bound to"):
        bound.narrow(call)


def test_unbound_keys_are_the_calls_to_choose():
    assert Filters.parse({"user": "ana"}).narrow({"status": "archived"}).status == [Status.ARCHIVED]
    assert Filters().narrow({"user": "ben"}).user == "ben"
    with pytest.raises(InvalidFilterError, match="allowed keys"):
        Filters().narrow({"usr": "ben"})


def test_relevance_is_bounded_and_thresholds_results(cube):
    cube.add(
        [
            "Ana plays the cello every Sunday",
            "Ana's cello teacher is called Marta",
            "Ana is learning Portuguese and Japanese",
        ]
    )
    results = cube.search("what languages is Ana learning?", k=3)
    assert all(0.0 <= r.relevance <= 1.0 for r in results)
    assert results[0].content == "Ana is learning Portuguese and Japanese"
    assert results[0].relevance > 0.2 > max(r.relevance for r in results[1:])
    # the threshold drops the cello memories, not the answer
    kept = cube.search("what languages is Ana learning?", k=3, min_score=0.2)
    assert [r.content for r in kept] == ["Ana is learning Portuguese and Japanese"]
    assert cube.search("languages", k=3, min_score=1.0) == []
    for bad in (-0.1, 1.5, "high", True):
        with pytest.raises(InvalidInputError, match="min_score"):
            cube.search("languages", min_score=bad)


def test_an_exact_match_is_relevant_and_an_unrelated_one_is_not(cube):
    cube.add(["my locker code is 4471", "the boiler needs a service in May"])
    (hit,) = cube.search("what is my locker code?", k=1)
    assert hit.relevance > 0.5 and hit.lexical_score == pytest.approx(1.0)
    assert cube.search("recommend a sci-fi novel", k=2, min_score=DEFAULT_MIN_SCORE) == []


def test_a_neighbour_reorders_but_never_lifts_relevance(cube):
    """The issue's three turns: the weather turn is indexed with its neighbour's words (so
    it ranks near the answer), but its relevance is its own match: below the default
    threshold, where the neighbour-lent BM25 share would have put it at 0.99."""
    cube.add_messages(
        [
            {"speaker": "Ana", "text": "I'm allergic to peanuts", "id": "1"},
            {"speaker": "Ana", "text": "The weather is lovely today", "id": "2"},
            {"speaker": "Ben", "text": "Glad to hear it", "id": "3"},
        ],
        session="s1",
    )
    by_text = {r.content: r for r in cube.search("what is Ana allergic to?", k=3)}
    allergy, weather = by_text["I'm allergic to peanuts"], by_text["The weather is lovely today"]
    assert weather.lexical_score > 0.9  # the neighbour's words, indexed with it
    assert weather.relevance < DEFAULT_MIN_SCORE < allergy.relevance
    kept = cube.search("what is Ana allergic to?", k=3, min_score=DEFAULT_MIN_SCORE)
    assert [r.content for r in kept] == ["I'm allergic to peanuts"]
