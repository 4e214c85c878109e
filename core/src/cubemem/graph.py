"""The entity graph of a cube, derived from its memories and kept with the search index.

Every memory the index holds is read for the names it mentions (``cubemem.entities``); the
names resolve to entities per owner (the user, else the agent, as ``Scope.owner_filter``
reads a memory's owner), and two entities that one memory mentions together are related
through it. Nothing here is stored apart from the memories: the graph always agrees with them
(a memory updated, deleted or forgotten takes its mentions along), it follows the store's
change feed as the index does, on every engine, and a caller sees the entities and relations
of the memories it may see — the same filters, grants and timelines as search.

Resolution, per owner: the same name in any case is one entity; a first name is folded into
the one full name that starts with it ("Ana" and "Ana Souza"; with two Anas with surnames,
"Ana" stays apart); a person and a place of the same name ("Paris" the speaker, "to Paris")
stay two entities.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cubemem.entities import NOT_NAMES, WORDS, Kind, Mention, key, mentions
from cubemem.model.graph import EntityLink

Owner = str | None


def entity_id(owner: Owner, name_key: str) -> str:
    return hashlib.blake2b(f"{owner}\x1f{name_key}".encode(), digest_size=8).hexdigest()


@dataclass
class Node:
    """One entity: its names, the kinds its mentions suggest, the memories that mention it."""

    id: str
    owner: Owner
    name: str
    names: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)
    slots: set[int] = field(default_factory=set)

    @property
    def kind(self) -> Kind:
        definite = [(n, k) for k, n in self.kinds.items() if k != "thing"]
        return max(definite)[1] if definite else "thing"  # type: ignore[return-value]


def _definite(kind: str) -> bool:
    return kind in ("person", "place")


class EntityGraph:
    """Entities and their mentions by index slot; relations are read from the mentions."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._by_key: dict[tuple[Owner, str], str] = {}
        self._by_first: dict[tuple[Owner, str], set[str]] = {}
        self._names: dict[str, set[str]] = {}
        """Name key -> entity ids of any owner (what a query's words are looked up in)."""
        self._of_slot: dict[int, tuple[str, ...]] = {}
        self._into: dict[str, str] = {}
        """Merged entity -> the entity it counts as (the store's ``EntityLink`` log)."""
        self._members: dict[str, list[str]] = {}

    # -- following the memories -------------------------------------------------------------
    def put(self, slot: int, owner: Owner, text: str, speaker: str | None) -> None:
        """The mentions of the memory in ``slot`` (replacing what it mentioned before)."""
        self.remove(slot)
        found = [self._resolve(owner, m) for m in mentions(text, speaker)]
        found += self._known_in(owner, text)  # known names in any case ("ana")
        ids = tuple(dict.fromkeys(i for i in found if i is not None))
        for id_ in ids:
            self.nodes[id_].slots.add(slot)
        if ids:
            self._of_slot[slot] = ids

    def remove(self, slot: int) -> None:
        for id_ in self._of_slot.pop(slot, ()):
            self.nodes[id_].slots.discard(slot)

    def _known(self, owner: Owner, name_key: str) -> str | None:
        """The owner's entity of that name: the name itself, else the one full name that
        starts with it."""
        known = self._by_key.get((owner, name_key))
        if known is None and " " not in name_key:
            longer = self._by_first.get((owner, name_key), set())
            if len(longer) == 1:
                known = next(iter(longer))
        return known

    def _known_in(self, owner: Owner, text: str) -> list[str | None]:
        words = [key(w) for w in WORDS.findall(text)]
        found: list[str | None] = []
        for size in (1, 2, 3):
            for i in range(len(words) - size + 1):
                name_key = " ".join(words[i : i + size])
                if len(name_key) > 2 and name_key not in NOT_NAMES:
                    found.append(self._known(owner, name_key))
        return found

    def _resolve(self, owner: Owner, mention: Mention) -> str | None:
        name_key = key(mention.name)
        if not name_key:
            return None
        known = self._known(owner, name_key)
        if known is not None:
            node = self.nodes[known]
            if _definite(mention.kind) and _definite(node.kind) and mention.kind != node.kind:
                return self._resolve_apart(owner, mention, name_key)
            if (owner, name_key) not in self._by_key:  # "Ana" for the one "Ana ...": an alias
                self._link(owner, known, name_key)
            node.names.add(mention.name)
            node.kinds[mention.kind] += 1
            return known
        if not mention.certain:
            return None
        words = name_key.split()
        if len(words) > 1:
            short = self._by_key.get((owner, words[0]))
            rivals = self._by_first.get((owner, words[0]), set())
            if short is not None and not rivals and len(self.nodes[short].name.split()) == 1:
                node = self.nodes[short]  # "Ana Souza" after "Ana": one person, full name
                node.name = mention.name
                self._link(owner, short, name_key)
                node.kinds[mention.kind] += 1
                return short
        return self._new(owner, mention, name_key)

    def _resolve_apart(self, owner: Owner, mention: Mention, name_key: str) -> str:
        apart = f"{name_key}#{mention.kind}"
        known = self._by_key.get((owner, apart))
        if known is None:
            return self._new(owner, mention, apart, shown_key=name_key)
        self.nodes[known].kinds[mention.kind] += 1
        return known

    def _new(self, owner: Owner, mention: Mention, name_key: str, shown_key: str = "") -> str:
        id_ = entity_id(owner, name_key)
        self.nodes[id_] = Node(id_, owner, mention.name, {mention.name}, Counter([mention.kind]))
        self._link(owner, id_, name_key, shown_key or name_key)
        return id_

    def _link(self, owner: Owner, id_: str, name_key: str, lookup: str = "") -> None:
        self._by_key[(owner, name_key)] = id_
        self._names.setdefault(lookup or name_key, set()).add(id_)
        words = (lookup or name_key).split()
        if len(words) > 1:
            self._by_first.setdefault((owner, words[0]), set()).add(id_)

    def set_links(self, links: Sequence[EntityLink]) -> None:
        """Apply the resolution log: each merge makes its source count as its target, a split
        undoes its source's merge. Mentions are kept per entity, so a split restores both."""
        into: dict[str, str] = {}
        for link in links:
            if link.action == "merge" and link.target and link.target != link.source:
                into[link.source] = link.target
            elif link.action == "split":
                into.pop(link.source, None)
        self._into, self._members = into, {}
        for source in into:
            self._members.setdefault(self.root(source), []).append(source)

    def root(self, id_: str) -> str:
        """The entity ``id_`` counts as after merges (itself when never merged)."""
        seen = set()
        while id_ in self._into and id_ not in seen:
            seen.add(id_)
            id_ = self._into[id_]
        return id_

    def members(self, id_: str) -> list[str]:
        """``id_`` and the entities merged into it."""
        return [id_, *self._members.get(id_, ())] if self.root(id_) == id_ else [id_]

    def merged_into(self, id_: str) -> str | None:
        return self._into.get(id_)

    # -- reading ------------------------------------------------------------------------------
    def named(self, words: Sequence[str]) -> set[str]:
        """Entities a text names: its runs of one to four words looked up case-folded."""
        folded = [key(w) for w in words]
        found: set[str] = set()
        for size in (4, 3, 2, 1):
            for i in range(len(folded) - size + 1):
                found |= self._names.get(" ".join(folded[i : i + size]), set())
        return {self.root(i) for i in found}

    def visible(self, id_: str, mask: np.ndarray) -> list[int]:
        """The visible memories that mention ``id_`` (or an entity merged into it)."""
        n = len(mask)
        slots: set[int] = set()
        for member in self.members(id_):
            node = self.nodes.get(member)
            if node is not None:
                slots.update(s for s in node.slots if s < n and mask[s])
        return sorted(slots)

    def neighbours(self, id_: str, mask: np.ndarray) -> Counter[str]:
        """Entities mentioned together with ``id_`` in visible memories, by how often."""
        together: Counter[str] = Counter()
        for slot in self.visible(id_, mask):
            together.update(e for e in self.mentioned([slot]).get(slot, ()) if e != id_)
        return together

    def mentioned(self, slots: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """The entities (after merges) each of ``slots`` mentions."""
        return {
            s: tuple(dict.fromkeys(self.root(e) for e in self._of_slot[s]))
            for s in slots
            if s in self._of_slot
        }

    def boost(
        self,
        fused: dict[int, float],
        mask: np.ndarray,
        words: Sequence[str],
        *,
        weight: float,
        share: float,
        leads: int,
        expand: int,
    ) -> None:
        """Add the entity signal to a search's ``fused`` scores (in place). First hop: memories
        that mention an entity the query's ``words`` name gain ``weight`` by how specific it is
        (an idf: a name in every memory, such as a speaker of a two-person conversation, says
        little). Second hop: the other entities of the ``leads`` best memories naming one lend
        their own memories ``share`` of that memory's score ("bouldering with Ben" for "Ana's
        climbing partner"); at most ``expand`` memories come in beyond the candidates."""
        named = self.named(words)
        if not named:
            return
        total = max(int(mask.sum()), 1)
        scale = math.log1p(total)

        def specific(slots: list[int]) -> float:
            return math.log1p(total / len(slots)) / scale

        signal: dict[int, float] = {}
        for entity in named:
            slots = self.visible(entity, mask)
            if slots:
                gain = specific(slots) / len(named)
                for slot in slots:
                    signal[slot] = signal.get(slot, 0.0) + gain
        for slot, gain in signal.items():
            fused[slot] = fused.get(slot, 0.0) + weight * gain
        if not share:
            return
        hop: dict[int, float] = {}
        best = sorted((s for s in signal if s in fused), key=lambda s: -fused[s])
        for lead in best[:leads]:
            for other in self.mentioned([lead]).get(lead, ()):
                if other in named:
                    continue
                slots = self.visible(other, mask)
                gain = share * max(fused[lead], 0.0) * specific(slots)
                for slot in slots:
                    if slot != lead:
                        hop[slot] = max(hop.get(slot, 0.0), gain)
        outside = sorted((s for s in hop if s not in fused), key=lambda s: -hop[s])
        for slot in [s for s in hop if s in fused] + outside[:expand]:
            fused[slot] = fused.get(slot, 0.0) + hop[slot]
