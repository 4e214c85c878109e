"""Time words in a query, read against a reference date: "in May 2023", "on 13 October,
2023", "last week", "two years ago", "yesterday" — the window of time a question is about.

``window(query, now)`` returns ``(start, end)`` in UTC, or None when the query names no time.
A month without a year is the last such month up to ``now`` ("in June", asked in March 2024,
is June 2023); a bare weekday is not read (too often a habit, "on Fridays"). Search uses the
window as a boost for memories whose valid time starts in it (``RetrievalConfig.time_weight``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"  # noqa: E501
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}

_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+(\d{{4}})\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH}\.?,?\s+(\d{{4}})\b", re.I)
_IN_MONTH = re.compile(rf"\b(?:in|during|since|last|this)\s+{_MONTH}\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of|since)\s+((?:19|20)\d\d)\b", re.I)
_AGO = re.compile(
    r"\b(\d+|a|an|one|two|three|four|five|six)\s+(day|week|month|year)s?\s+ago\b", re.I
)
_LAST = re.compile(r"\b(last|past|previous)\s+(week|weekend|month|year)\b", re.I)
_DAYS = re.compile(r"\b(yesterday|today|tonight)\b", re.I)


def _month_span(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def window(query: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The span of time ``query`` names, read against ``now`` (None if it names none)."""
    now = now.astimezone(UTC)
    for pattern, order in ((_DAY_MONTH_YEAR, "dmy"), (_MONTH_DAY_YEAR, "mdy")):
        found = pattern.search(query)
        if found:
            parts = dict(zip(order, found.groups(), strict=True))
            try:
                day = datetime(
                    int(parts["y"]), MONTHS[parts["m"].lower()], int(parts["d"]), tzinfo=UTC
                )
            except ValueError:
                continue
            return day, day + timedelta(days=1)
    found = _MONTH_YEAR.search(query)
    if found:
        return _month_span(int(found.group(2)), MONTHS[found.group(1).lower()])
    found = _IN_MONTH.search(query)
    if found:  # "in May", not the verb: the month follows a preposition
        month = MONTHS[found.group(1).lower()]
        year = now.year if month <= now.month else now.year - 1
        return _month_span(year, month)
    found = _YEAR.search(query)
    if found:
        year = int(found.group(1))
        return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    found = _AGO.search(query)
    if found:
        count = found.group(1).lower()
        n = int(count) if count.isdigit() else _NUMBERS[count]
        days = n * _UNITS[found.group(2).lower()]
        middle = now - timedelta(days=days)
        slack = timedelta(days=max(1, days // 4))
        return middle - slack, middle + slack
    found = _LAST.search(query)
    if found:
        unit = found.group(2).lower()
        days = {"week": 7, "weekend": 7, "month": 31, "year": 366}[unit]
        return now - timedelta(days=days), now
    found = _DAYS.search(query)
    if found:
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=1) if found.group(1).lower() == "yesterday" else today
        return start, start + timedelta(days=1)
    return None
