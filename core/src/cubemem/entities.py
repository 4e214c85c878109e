"""Entities in text, offline: the names a memory mentions, with a guess at their kind.

No model is needed (the embedded default must work without one, and no named-entity model
ships on PyPI for offline use): a name is a run of capitalised words inside a sentence, or
the speaker of a turn; a capitalised word opening a sentence is a name where it reads as one
("Ana's", "Ana and Ben", "Ana works") or is known as one otherwise (``Mention.certain``).
Possessives are dropped ("Ana's" is Ana), words that are capitalised for grammar (pronouns,
greetings, months, weekdays) are not names, and the kind is read from the words around a
name: the speaker is a person, "in/to/from Lisbon" a place, "Acme Inc" an organisation;
anything else is a thing (``Mention.kind``).

Resolution (``key``): names are compared case-folded and with spaces collapsed, so "Ana" and
"ana" are one entity; ``cubemem.graph`` also folds a first name into the one full name that
starts with it ("Ana" into "Ana Souza"), and never a person into a place of the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["person", "place", "organisation", "thing"]
KINDS: tuple[Kind, ...] = ("person", "place", "organisation", "thing")

WORDS = re.compile(r"[^\W\d_][\w'’.-]*|\d+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
ROLES = frozenset({"user", "human", "assistant", "ai", "bot", "model", "system", "tool"})
"""Chat roles: who said a turn of a user–assistant conversation. Never a name or an entity."""
USER_ROLES = frozenset({"user", "human"})

NOT_NAMES = (
    frozenset(
        """i i'm i've i'd i'll im ive me my mine we us our you your yours he him his she her hers
    they them their it its it's this that these those there here what when where why how who
    which whose the a an and but or so if then yes no not oh ah wow hey hi hello thanks thank
    okay ok yeah yep nope sure well also just really great good nice awesome cool sounds lol
    haha please let do did does is are was were be been have has had can could would should
    will shall may might must today yesterday tomorrow tonight now anyway btw omg congrats
    congratulations happy merry dear mr mrs ms dr st january february march april june july
    august september october november december monday tuesday wednesday thursday friday
    saturday sunday""".split()
    )
    | ROLES
)
_PLACE_BEFORE = frozenset("in to from at near visit visited visiting toward towards".split())
_ORG_WORDS = frozenset(
    """inc inc. corp corp. ltd ltd. llc company co co. university college school institute
    group club bank hospital church foundation association society agency team""".split()
)
_CONNECTORS = frozenset("of de da do dos das van von der del la le du".split())


@dataclass(frozen=True)
class Mention:
    """A name in a text and the kind its context suggests."""

    name: str
    kind: Kind
    certain: bool = True
    """False for one capitalised word opening a sentence: a name only if known otherwise."""


def key(name: str) -> str:
    """The form names are compared in: case-folded, possessive dropped, spaces collapsed."""
    return " ".join(_POSSESSIVE.sub("", name).casefold().split())


def _capital(word: str) -> bool:
    return word[:1].isupper()


def _kind(words: list[str], start: int, end: int) -> Kind:
    if any(w.casefold().rstrip(".") in _ORG_WORDS for w in words[start:end]):
        return "organisation"
    if start > 0 and words[start - 1].casefold() in _PLACE_BEFORE:
        return "place"
    return "thing"


def _clean(word: str) -> str:
    return _POSSESSIVE.sub("", word.rstrip(".-"))


def _subject(words: list[str], at: int) -> bool:
    """Whether one capitalised word opening a sentence reads as a name: "Ana's ...", "Ana and
    Ben ...", or a subject before a verb ("Ana works", "Ben hiked"), not a plural noun."""
    word = words[at]
    if _POSSESSIVE.search(word) and word[-2:] in ("'s", "’s"):
        return True
    after = words[at + 1] if at + 1 < len(words) else ""
    if after.casefold() in ("and", "&") and at + 2 < len(words) and _capital(words[at + 2]):
        return True
    verb = after.isalpha() and after.islower() and after.endswith(("s", "ed"))
    return verb and len(word) > 1 and not word.endswith("s")


def mentions(text: str, speaker: str | None = None) -> list[Mention]:
    """The names ``text`` mentions (each once, in order of appearance), the speaker first."""
    found: dict[str, Mention] = {}
    if speaker and speaker.strip() and key(speaker) not in NOT_NAMES:
        found[key(speaker)] = Mention(" ".join(speaker.split()), "person")
    for sentence in _SENTENCE.split(text):
        words = WORDS.findall(sentence)
        i = 0
        while i < len(words):
            if not _capital(words[i]) or key(_clean(words[i])) in NOT_NAMES:
                i += 1
                continue
            start, end = i, i + 1
            while end < len(words) and (
                (_capital(words[end]) and key(_clean(words[end])) not in NOT_NAMES)
                or (
                    words[end].casefold() in _CONNECTORS
                    and end + 1 < len(words)
                    and _capital(words[end + 1])
                )
            ):
                end += 1
            i = end
            name = " ".join(_clean(w) for w in words[start:end]).strip()
            if not name or name.isdigit() or key(name) in found:
                continue
            certain = not (start == 0 and end - start == 1) or _subject(words, start)
            found[key(name)] = Mention(name, _kind(words, start, end), certain)
    return list(found.values())
