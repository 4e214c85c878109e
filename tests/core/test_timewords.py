"""Time words in queries: the window a question names, read against the cube's clock, and
the search boost it gives memories whose valid time starts in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cubemem.retrieve import RetrievalConfig
from cubemem.timewords import window

NOW = datetime(2023, 11, 1, 15, 0, tzinfo=UTC)


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What did Ana paint on October 13, 2023?", (day(2023, 10, 13), day(2023, 10, 14))),
        ("What did Gina find on 1 February, 2023?", (day(2023, 2, 1), day(2023, 2, 2))),
        ("What did Mel paint in July 2023?", (day(2023, 7, 1), day(2023, 8, 1))),
        ("When did Melanie go camping in June?", (day(2023, 6, 1), day(2023, 7, 1))),
        ("What happened in December?", (day(2022, 12, 1), day(2023, 1, 1))),  # the last one
        ("How often at the beach in 2023?", (day(2023, 1, 1), day(2024, 1, 1))),
        ("What did Ana say yesterday?", (day(2023, 10, 31), day(2023, 11, 1))),
        ("Where did John travel last year?", (day(2022, 10, 31), day(2023, 11, 1))),
        ("What did Ana do two weeks ago?", (day(2023, 10, 15), day(2023, 10, 21))),
        ("May I ask what Ana likes?", None),  # the verb, not the month
        ("What does Ana do on Fridays?", None),  # a habit, not a date
        ("What is Ana's favourite tea?", None),
    ],
)
def test_the_window_a_question_names(query, expected):
    found = window(query, NOW)
    if expected is None:
        assert found is None
        return
    assert found is not None
    start, end = found
    assert (start.date(), end.date()) == (expected[0].date(), expected[1].date())


def test_a_question_about_a_month_prefers_what_happened_then(cube):
    cube.maintenance.context.clock = lambda: NOW
    for month in (3, 6, 9):
        cube.add_messages(
            [{"speaker": "Ana", "text": "We went hiking in the hills with the kids"}],
            session=f"s{month}",
            timestamp=day(2023, month, 10),
        )
    june = next(m for m in cube.list() if m.provenance.occurred_at.month == 6)
    question = "Where did Ana go hiking in June 2023?"

    def lead(weight: float) -> float:
        cube.maintenance.retrieval = RetrievalConfig(time_weight=weight)
        found = cube.search(question, k=3)
        assert found[0].id == june.id  # the date in its index text already helps a little
        return found[0].score - found[1].score

    assert lead(0.3) > lead(0.0) + 0.2  # the window adds to June's turn alone
