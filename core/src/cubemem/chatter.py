"""What an agent loop should not remember, and what recall should not show twice.

**Chatter** (``worth_keeping``): a chat message is kept when it holds at least one *content
word* — a word that is not an English stop word (bm25s' list, as the lexical index uses), not
a word of conversation management (``DISCOURSE``: thanks, okay, noted, remember, …) and, in
an assistant's message, not bookkeeping (``BOOKKEEPING``: saved, updated, tool calls
complete) — that the turn has not already put into memory: the text a memory tool saved in
the same turn covers the user's "please remember I'm allergic to peanuts", the user's own
words cover the assistant's "Noted — you're allergic to peanuts", and the memories closest to
an answer cover one that repeats them ("You live in Lisbon." when memory says so). Questions
and anything new are kept; nothing is dropped for being short. The rule is measured on a
labelled set of messages written for the suite (``tests/data/chatter.json``: every
informative message kept, 24 of 29 chatter messages dropped) and in
``benchmarks/agent_chatter.py`` through a real ``create_agent`` loop.

**Facts over their turns** (``prefer_facts``): among recalled memories, a conversation turn an
extracted fact among them cites is left out (the fact says it; the turn stays reachable
through the fact's provenance), and a memory whose content words another better-ranked one
holds is a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from cubemem.model import MemoryItem, SearchResult

__all__ = ["BOOKKEEPING", "DISCOURSE", "content_words", "prefer_facts", "worth_keeping"]

DISCOURSE = frozenset(
    """ok okay k kk sure yes yeah yep yup no nope nah thanks thank thx ty cheers please pls
    great good cool nice awesome perfect lovely wonderful fine alright right sounds
    noted note got gotcha understood understand roger will do done sorry hi hello hey bye
    goodbye welcome glad happy help helpful anything else let know remember remembered
    keep mind tell told mention mentioned certainly absolutely definitely course indeed
    hmm oh ah wow lol haha appreciate appreciated info information see user assistant
    much need today""".split()
)
"""Words that manage a conversation (or name its two sides) rather than say something about
the world."""

BOOKKEEPING = frozenset(
    """tool tools call calls called complete completed saved save saving stored store
    memory memories updated update deleted delete added add recorded record""".split()
)
"""Words of an assistant's answer that report what it (or its tools) did."""

_WORDS = re.compile(r"(?u)\b\w+\b")
_stopwords: frozenset[str] | None = None


def _stop() -> frozenset[str]:
    global _stopwords
    if _stopwords is None:
        import bm25s.stopwords

        _stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN_PLUS)
    return _stopwords


def _stem(word: str) -> str:
    """A light plural/tense fold ("peanuts"/"peanut", "moved"/"move") without a stemmer."""
    for suffix in ("ies", "es", "s", "ed", "ing"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str, *, bookkeeping: bool = False) -> set[str]:
    """The words of ``text`` that say something (see the module docstring); ``bookkeeping``:
    ``BOOKKEEPING`` words say nothing either."""
    stop = _stop()
    out = set()
    for word in _WORDS.findall(text.casefold().replace("'", " ")):
        if word in stop or word in DISCOURSE or (bookkeeping and word in BOOKKEEPING):
            continue
        if len(word) < 2 and not word.isdigit():
            continue
        out.add(_stem(word))
    return out


def worth_keeping(
    messages: Sequence[tuple[str, str]],
    saved: Iterable[str] = (),
    memory: Callable[[str], Iterable[str]] | None = None,
) -> list[bool]:
    """For each ``(role, text)`` of one turn (role ``"user"``/``"human"`` or
    ``"assistant"``/``"ai"``), whether it holds anything the memory does not get otherwise.
    ``saved``: texts memory tools stored during the turn; ``memory``: text -> the stored
    memories closest to it (an assistant message they already say is a repetition — asked
    only for messages that pass the other checks)."""
    known: set[str] = set()
    for text in saved:
        known |= content_words(text)
    said_by_user: set[str] = set()
    for role, text in messages:
        if role in ("user", "human"):
            said_by_user |= content_words(text)
    keep = []
    for role, text in messages:
        assistant = role in ("assistant", "ai")
        words = content_words(text, bookkeeping=assistant)
        new = words - (known | said_by_user if assistant else known)
        if new and assistant and memory is not None:
            stored: set[str] = set()
            for other in memory(text):
                stored |= content_words(other)
            new -= stored
        keep.append(bool(new))
    return keep


Result = TypeVar("Result", SearchResult, MemoryItem)


def prefer_facts(results: Sequence[Result]) -> list[Result]:
    """``results`` (best first) without the turns a fact among them cites and without
    memories a better-ranked one already says."""
    items = [r.item if isinstance(r, SearchResult) else r for r in results]
    facts = [item for item in items if item.provenance.source == "extract"]
    cited = {s for item in facts for s in item.provenance.source_ids}
    out: list[Result] = []
    kept: list[set[str]] = []
    for result, item in zip(results, items, strict=True):
        if item.provenance.source == "message" and cited:
            own = set(item.provenance.source_ids or [item.id])
            if own <= cited:
                continue
        words = content_words(item.content)
        if words and any(words <= other for other in kept):
            continue
        kept.append(words)
        out.append(result)
    return out
