"""Entity resolution by embedding: a new entity whose name embeds as nearly the same as an
older one's of the same owner becomes part of it ("NYC" and "New York City", "Acme Inc" and
"ACME Corp", "María García" and "Maria Garcia").

Names alone embed loosely — with MiniLM "Ana Souza" and "Ana Silva" have cosine 0.71, "Tom
Hanks" and "Tom Cruise" 0.67, while "NYC" and "New York City" have 0.92 — so the threshold
(``RetrievalConfig.entity_match``, 0.9) is high, and a person is never folded into a place. A
fold is derived like the rest of the graph (every process makes the same ones from the same
memories); a merge the user wants beyond it is ``merge_entities``, kept in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cubemem.graph import EntityGraph, Node

CHUNK = 512
"""Fresh names compared at once (a chunk's own similarity matrix is CHUNK²)."""


def match_names(
    graph: EntityGraph, embed: Callable[[list[str]], Any], threshold: float
) -> list[tuple[str, str]]:
    """Fold each entity created since the last call into the most similar older entity of the
    same owner whose name has cosine ``threshold`` or more with its own (and whose kind does
    not rule it out); the others are kept to be compared with later ones. ``embed`` embeds a
    batch of names. Returns the (folded, into) pairs.

    Each entity is compared with those kept before it, in the order they appeared, so a graph
    built at once and one followed write by write fold the same names."""
    fresh = [i for i in graph.fresh if i in graph.nodes]
    graph.fresh = []
    if not fresh or threshold <= 0:
        return []
    vectors = np.asarray(embed([graph.nodes[i].name for i in fresh]), dtype=np.float32)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    folds: list[tuple[str, str]] = []
    for start in range(0, len(fresh), CHUNK):
        chunk, chunk_vectors = fresh[start : start + CHUNK], vectors[start : start + CHUNK]
        owners = [graph.nodes[i].owner for i in chunk]
        for owner in dict.fromkeys(owners):
            mine = [j for j, o in enumerate(owners) if o == owner]
            folds += _match_owner(
                graph, owner, [chunk[j] for j in mine], chunk_vectors[mine], threshold
            )
    return folds


def _match_owner(
    graph: EntityGraph, owner: str | None, ids: list[str], new: np.ndarray, threshold: float
) -> list[tuple[str, str]]:
    kept_ids, kept = graph.name_vectors.get(owner, ([], new[:0]))
    old_sims = new @ kept.T  # against the entities kept before
    own_sims = new @ new.T  # against the ones before it here
    taken: list[int] = []
    folds: list[tuple[str, str]] = []
    for row, id_ in enumerate(ids):
        node = graph.nodes[id_]
        options = [
            (float(old_sims[row, c]), kept_ids[c])
            for c in np.flatnonzero(old_sims[row] >= threshold)
        ]
        options += [
            (float(own_sims[row, t]), ids[t]) for t in taken if own_sims[row, t] >= threshold
        ]
        options = [o for o in options if _compatible(graph, node, o[1])]
        if not options:
            taken.append(row)
            continue
        into = graph.current(max(options)[1])
        fold(graph, id_, into)
        folds.append((id_, into))
    if taken:
        graph.name_vectors[owner] = (
            kept_ids + [ids[t] for t in taken],
            np.vstack([kept, new[taken]]),
        )
    return folds


def _compatible(graph: EntityGraph, node: Node, other_id: str) -> bool:
    other = graph.nodes.get(graph.current(other_id))
    if other is None:
        return False
    definite = {"person", "place"}
    return not (node.kind in definite and other.kind in definite and node.kind != other.kind)


def fold(graph: EntityGraph, id_: str, into: str) -> None:
    """``id_`` becomes part of ``into``: its names are aliases, its mentions its."""
    node, target = graph.nodes.pop(id_), graph.nodes[into]
    target.names |= node.names
    target.kinds.update(node.kinds)
    for slot in node.slots:
        graph.of_slot[slot] = tuple(
            dict.fromkeys(into if i == id_ else i for i in graph.of_slot.get(slot, ()))
        )
        if graph.spoken.get(slot) == id_:
            graph.spoken[slot] = into
        typed = graph.typed.get(slot)
        if typed is not None:
            ends = [into if e == id_ else e for e in (typed[0], typed[2])]
            if ends[0] == ends[1]:
                del graph.typed[slot]
            else:
                graph.typed[slot] = (ends[0], typed[1], ends[1])
    target.slots |= node.slots
    for name_key, known in list(graph.by_key.items()):
        if known == id_:
            graph.by_key[name_key] = into
    for table in (graph.names_index, graph.by_first):
        for ids in table.values():
            if id_ in ids:
                ids.discard(id_)
                ids.add(into)
    for folded, became in list(graph.folded.items()):
        if became == id_:
            graph.folded[folded] = into
    graph.folded[id_] = into
    graph.forget_arrays(id_, into)
