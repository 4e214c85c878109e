"""The entity graph of a cube, derived from its memories and kept with the search index:
every memory is read for the names it mentions (``cubemem.entities``); names resolve to
entities per owner (the user, else the agent), and two entities one memory mentions together
are related through it. Nothing is stored apart from the memories: the graph follows the
store's change feed as the index does, and a caller sees the entities and relations of the
memories it may see (the same filters, grants and timelines as search). Resolution, per
owner: one name in any case is one entity; a first name folds into the one full name starting
with it; a person and a place of one name stay two; names embedding alike are one entity."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

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

    def __reduce__(self) -> tuple[object, ...]:  # kinds as a dict: a Counter unpickles slowly
        return (_node, (self.id, self.owner, self.name, self.names, dict(self.kinds), self.slots))


def _node(id: str, owner: Owner, name: str, names: Any, kinds: Any, slots: Any) -> Node:
    dict.update(counted := Counter.__new__(Counter), kinds)  # no __init__: 10 µs each
    return Node(id, owner, name, names, counted, slots)


def _definite(kind: str) -> bool:
    return kind in ("person", "place")


class EntityGraph:
    """Entities and their mentions by index slot; relations are read from the mentions."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.by_key: dict[tuple[Owner, str], str] = {}
        self.by_first: dict[tuple[Owner, str], set[str]] = {}
        self.names_index: dict[str, set[str]] = {}
        """Name key -> entity ids of any owner (what a query's words are looked up in)."""
        self.of_slot: dict[int, tuple[str, ...]] = {}
        self.typed: dict[int, tuple[str, str, str]] = {}
        """Slot -> (subject, relation, object) an extracted fact stated."""
        self.spoken: dict[int, str] = {}
        """Slot -> who said it (conversation turns only: a fact's speaker is who it came from,
        and on LoCoMo's observation facts the speaker signal lowered R@10 by 0.007)."""
        self._into: dict[str, str] = {}
        """Merged entity -> the entity it counts as (the store's ``EntityLink`` log)."""
        self._members: dict[str, list[str]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        """Entity (root) -> its memories' slots, sorted (``_array``)."""
        # the embedding match (``cubemem.graph_names``): entities new since it last ran, those
        # it folded into another, and per owner the ones it kept with their names' vectors
        self.fresh: list[str] = []
        self.folded: dict[str, str] = {}
        self.name_vectors: dict[Owner, tuple[list[str], np.ndarray]] = {}

    # -- following the memories -------------------------------------------------------------
    def put(
        self,
        slot: int,
        owner: Owner,
        text: str,
        speaker: str | None,
        triple: tuple[str | None, str | None, str | None] | None = None,
        turn: bool = False,
    ) -> None:
        """The mentions of the memory in ``slot`` (replacing what it mentioned before); an
        extracted fact's ``triple`` (subject, relation, object) names two of them and how
        they are related. A conversation ``turn`` also records who said it."""
        self.remove(slot)
        found: list[str | None] = []
        if triple is not None:
            subject, relation, obj = triple
            ends = [
                self._resolve(owner, Mention(" ".join(name.split()), "thing"))
                if name and name.strip()
                else None
                for name in (subject, obj)
            ]
            found += ends
            if relation and ends[0] and ends[1] and ends[0] != ends[1]:
                self.typed[slot] = (ends[0], relation, ends[1])
        said = mentions(text, speaker)
        found += [self._resolve(owner, m) for m in said]
        if turn and said and speaker and key(said[0].name) == key(speaker):
            spoken = found[len(found) - len(said)]
            if spoken is not None:
                self.spoken[slot] = spoken
        found += self._known_in(owner, text)  # known names in any case ("ana")
        ids = tuple(dict.fromkeys(i for i in found if i is not None))
        for id_ in ids:
            self.nodes[id_].slots.add(slot)
            self._arrays.pop(self.root(id_), None)
        if ids:
            self.of_slot[slot] = ids

    def remove(self, slot: int) -> None:
        self.typed.pop(slot, None)
        self.spoken.pop(slot, None)
        for id_ in self.of_slot.pop(slot, ()):
            self.nodes[id_].slots.discard(slot)
            self._arrays.pop(self.root(id_), None)

    def _known(self, owner: Owner, name_key: str) -> str | None:
        """The owner's entity of that name: the name itself, else the one full name that
        starts with it."""
        known = self.by_key.get((owner, name_key))
        if known is None and " " not in name_key:
            longer = self.by_first.get((owner, name_key), set())
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
            if (owner, name_key) not in self.by_key:  # "Ana" for the one "Ana ...": an alias
                self._link(owner, known, name_key)
            node.names.add(mention.name)
            node.kinds[mention.kind] += 1
            return known
        if not mention.certain:
            return None
        words = name_key.split()
        if len(words) > 1:
            short = self.by_key.get((owner, words[0]))
            rivals = self.by_first.get((owner, words[0]), set())
            if short is not None and not rivals and len(self.nodes[short].name.split()) == 1:
                node = self.nodes[short]  # "Ana Souza" after "Ana": one person, full name
                node.name = mention.name
                self._link(owner, short, name_key)
                node.kinds[mention.kind] += 1
                return short
        return self._new(owner, mention, name_key)

    def _resolve_apart(self, owner: Owner, mention: Mention, name_key: str) -> str:
        apart = f"{name_key}#{mention.kind}"
        known = self.by_key.get((owner, apart))
        if known is None:
            return self._new(owner, mention, apart, shown_key=name_key)
        self.nodes[known].kinds[mention.kind] += 1
        return known

    def _new(self, owner: Owner, mention: Mention, name_key: str, shown_key: str = "") -> str:
        id_ = entity_id(owner, name_key)
        self.nodes[id_] = Node(id_, owner, mention.name, {mention.name}, Counter([mention.kind]))
        self.fresh.append(id_)
        self._link(owner, id_, name_key, shown_key or name_key)
        return id_

    def _link(self, owner: Owner, id_: str, name_key: str, lookup: str = "") -> None:
        self.by_key[(owner, name_key)] = id_
        self.names_index.setdefault(lookup or name_key, set()).add(id_)
        words = (lookup or name_key).split()
        if len(words) > 1:
            self.by_first.setdefault((owner, words[0]), set()).add(id_)

    def set_links(self, links: Sequence[EntityLink]) -> None:
        """Apply the resolution log: each merge makes its source count as its target, a split
        undoes its source's merge. Mentions are kept per entity, so a split restores both."""
        into: dict[str, str] = {}
        for link in links:
            source, target = self.current(link.source), self.current(link.target or "")
            if link.action == "merge" and link.target and target != source:
                into[source] = target
            elif link.action == "split":
                into.pop(source, None)
        self._into, self._members = into, {}
        self._arrays.clear()
        for source in into:
            self._members.setdefault(self.root(source), []).append(source)

    def forget_arrays(self, *ids: str) -> None:
        for id_ in ids:
            self._arrays.pop(id_, None)
            self._arrays.pop(self.root(id_), None)

    def current(self, id_: str) -> str:
        """The entity ``id_`` became part of by an embedding match (itself if none)."""
        return self.folded.get(id_, id_)

    def root(self, id_: str) -> str:
        """The entity ``id_`` counts as after merges (itself when never merged)."""
        id_ = self.folded.get(id_, id_)
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
                found |= self.names_index.get(" ".join(folded[i : i + size]), set())
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

    def relation_kind(self, a: str, b: str, slots: Iterable[int]) -> str | None:
        """The relation extracted facts among ``slots`` state between ``a`` and ``b`` (either
        way round), the most stated first; None when none does."""
        said: Counter[str] = Counter()
        for slot in slots:
            typed = self.typed.get(slot)
            if typed and {self.root(typed[0]), self.root(typed[2])} == {a, b}:
                said[typed[1]] += 1
        return said.most_common(1)[0][0] if said else None

    def mentioned(self, slots: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """The entities (after merges) each of ``slots`` mentions."""
        return {
            s: tuple(dict.fromkeys(self.root(e) for e in self.of_slot[s]))
            for s in slots
            if s in self.of_slot
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
        speaker: float = 0.0,
        owner: str | None = None,
    ) -> None:
        """Add the entity signal to a search's ``fused`` scores (in place). First hop: memories
        that mention an entity the query's ``words`` name gain ``weight`` by how specific it is
        (an idf: a name in every memory, such as a speaker of a two-person conversation, says
        little). Second hop: the other entities of the ``leads`` best memories naming one lend
        their own memories ``share`` of that memory's score ("bouldering with Ben" for "Ana's
        climbing partner"). Only the candidates are scored, plus at most ``expand`` of each
        entity's newest memories, so the cost follows the candidates, not how often a name
        occurs. ``speaker``: a candidate turn said by a person the query names has its
        score multiplied by 1 + this (shared among the people named; "what did Ana say about
        the move?" — a speaker is in half of a two-person conversation, so the idf leaves
        her almost nothing).
        ``owner``: the user the search is narrowed to (other owners' entities are skipped
        without looking at their memories)."""
        named = self.named(words)
        if owner is not None:
            named = {e for e in named if self.nodes[e].owner == owner}
        if not named:
            return
        total = max(int(mask.sum()), 1)
        scale = math.log1p(total)
        candidates = list(fused)

        reached: dict[str, tuple[list[int], float]] = {}

        def reach(entity: str) -> tuple[list[int], float]:
            """The candidates (and up to ``expand`` newest others) mentioning ``entity``, and
            how specific it is (once per entity and search)."""
            if entity in reached:
                return reached[entity]
            ordered = self._array(entity)
            ordered = ordered[ordered < len(mask)]
            seen = ordered[mask[ordered]]
            if not len(seen):
                reached[entity] = ([], 0.0)
                return reached[entity]
            if len(seen) < len(candidates):
                found = [int(s) for s in seen if int(s) in fused]
            else:
                slots = self._slots(entity)
                found = [s for s in candidates if s in slots]
            newest = [int(s) for s in seen[::-1][: expand + len(found)] if int(s) not in fused]
            found += newest[:expand]
            reached[entity] = (found, math.log1p(total / len(seen)) / scale)
            return reached[entity]

        def add(gains: dict[int, float]) -> None:
            """Candidates take their gain; of the others, only the ``expand`` best come in."""
            outside = sorted((s for s in gains if s not in fused), key=lambda s: -gains[s])
            for slot in [s for s in gains if s in fused] + outside[:expand]:
                fused[slot] = fused.get(slot, 0.0) + gains[slot]

        first: dict[int, float] = {}
        for entity in named:
            slots, specific = reach(entity)
            for slot in slots:
                first[slot] = first.get(slot, 0.0) + weight * specific / len(named)
        if speaker and self.spoken:
            said_by = {e for e in named if self.nodes[e].kind == "person"}
            for slot in candidates if said_by else ():
                spoken = self.spoken.get(slot)
                if spoken is not None and self.root(spoken) in said_by:
                    fused[slot] *= 1.0 + speaker / len(said_by)
        add(first)
        if not share:
            return
        best = sorted((s for s in first if s in fused), key=lambda s: -fused[s])[:leads]
        hops: dict[int, float] = {}
        for lead in best:
            lead_score = max(fused[lead], 0.0)
            others = [e for e in self.mentioned([lead]).get(lead, ()) if e not in named]
            # the most specific few: a name in half the cube lends nothing worth its cost
            others.sort(key=lambda e: len(self._array(e)))
            for other in others[:3]:
                slots, specific = reach(other)
                for slot in slots:
                    if slot != lead:
                        hops[slot] = max(hops.get(slot, 0.0), share * lead_score * specific)
        add(hops)

    def _array(self, id_: str) -> np.ndarray:
        """``_slots`` as a sorted array, kept until those memories change."""
        cached = self._arrays.get(id_)
        if cached is None:
            slots = self._slots(id_)
            cached = np.fromiter(sorted(slots), dtype=np.int64, count=len(slots))
            self._arrays[id_] = cached
        return cached

    def _slots(self, id_: str) -> set[int]:
        """Every memory (any visibility) mentioning ``id_`` or an entity merged into it."""
        members = self.members(id_)
        if len(members) == 1:
            node = self.nodes.get(id_)
            return node.slots if node is not None else set()
        out: set[int] = set()
        for member in members:
            node = self.nodes.get(member)
            if node is not None:
                out |= node.slots
        return out
