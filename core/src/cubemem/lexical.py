"""BM25 that updates in place: a packed main segment plus a small delta of recent documents.

A write changes one document, so the index must not be rebuilt from every row for it (at
10^5 memories a rebuild takes seconds). Documents live in *slots* (stable integers the caller
assigns); setting a slot's document drops its old one and puts the new one in the delta, a
plain inverted dict. When the delta outgrows a share of the main segment the two are packed
into a new main segment (amortised: each document is re-packed a bounded number of times).

Scoring is Lucene's BM25 (the variant ``bm25s`` used before): idf from the live document
frequencies at query time, term-frequency saturation ``k1`` and length normalisation ``b``
against the average length when the main segment was last packed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

K1 = 1.5
B = 0.75
MIN_DELTA = 2_000
"""The delta is packed into the main segment once it holds more documents than this …"""
DELTA_SHARE = 0.05
"""… and more than this share of the main segment."""


class Analyzer:
    """Lower-case words, English stop words removed, Snowball-stemmed.

    ``keep_short`` keeps one-character words and numbers ("item 4" vs "item 40"), which the
    earlier analyzer dropped along with single letters.
    """

    def __init__(self, *, keep_short: bool = True) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("english")
        self._stopwords = _stopwords()
        self._split = re.compile(r"(?u)\b\w+\b" if keep_short else r"(?u)\b\w\w+\b").findall

    def __call__(self, text: str) -> list[str]:
        words = [w for w in self._split(text.lower()) if w not in self._stopwords]
        return list(self._stemmer.stemWords(words))


def _stopwords() -> frozenset[str]:
    """bm25s's English stop words, from its ``stopwords`` module alone: importing the package
    brings scipy (0.25-0.4 s of every cube's first search)."""
    import importlib.util

    spec = importlib.util.find_spec("bm25s")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "stopwords.py"
    words = importlib.util.spec_from_file_location("cubemem_bm25s_stopwords", path)
    assert words is not None and words.loader is not None
    module = importlib.util.module_from_spec(words)
    words.loader.exec_module(module)
    return frozenset(module.STOPWORDS_EN_PLUS)


COVERAGE_DOCUMENTS = 500
"""The fewest documents ``BM25Index.coverage`` weighs words as if it held."""


class BM25Index:
    """Documents in slots ``0..size-1``; see the module docstring."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._df = np.zeros(1024, dtype=np.int64)
        self._dl = np.zeros(1024, dtype=np.float32)
        self.documents = 0
        self._total_length = 0.0
        # main segment: raw term counts by slot (CSR) and BM25 term weights by term (CSC)
        self._rows = 0
        self._raw_ptr = np.zeros(1, dtype=np.int64)
        self._raw_terms = np.empty(0, dtype=np.int64)
        self._raw_counts = np.empty(0, dtype=np.float32)
        self._col_ptr = np.zeros(1, dtype=np.int64)
        self._col_slots = np.empty(0, dtype=np.int64)
        self._col_weights = np.empty(0, dtype=np.float32)
        self._valid = np.zeros(0, dtype=bool)
        self._replaced = 0
        self._avgdl = 1.0
        # delta: slot -> (terms, counts), and term -> {slot: count}
        self._delta: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._postings: dict[int, dict[int, float]] = {}

    # -- writing --------------------------------------------------------------------------
    def set_many(self, docs: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Give each slot its document (its analysed tokens; empty: no document)."""
        for slot, _ in docs:
            self._remove(slot)
        for slot, tokens in docs:
            if tokens:
                self._add(slot, tokens)
        if len(self._delta) > max(MIN_DELTA, DELTA_SHARE * self._rows):
            self.pack()

    def remove(self, slots: Sequence[int]) -> None:
        for slot in slots:
            self._remove(slot)

    def _term(self, token: str) -> int:
        term = self.vocab.get(token)
        if term is None:
            term = self.vocab[token] = len(self.vocab)
            if term >= len(self._df):
                self._df = np.concatenate([self._df, np.zeros_like(self._df)])
        return term

    def _add(self, slot: int, tokens: Sequence[str]) -> None:
        terms, counts = np.unique(
            np.fromiter((self._term(t) for t in tokens), dtype=np.int64, count=len(tokens)),
            return_counts=True,
        )
        self._delta[slot] = (terms, counts.astype(np.float32))
        for term, count in zip(terms.tolist(), counts.tolist(), strict=True):
            self._postings.setdefault(term, {})[slot] = count
        self._df[terms] += 1
        while slot >= len(self._dl):
            self._dl = np.concatenate([self._dl, np.zeros_like(self._dl)])
        self._dl[slot] = len(tokens)
        self.documents += 1
        self._total_length += len(tokens)

    def _remove(self, slot: int) -> None:
        if slot in self._delta:
            terms, _ = self._delta.pop(slot)
            for term in terms.tolist():
                postings = self._postings[term]
                del postings[slot]
                if not postings:
                    del self._postings[term]
        elif slot < self._rows and self._valid[slot]:
            terms = self._raw_terms[self._raw_ptr[slot] : self._raw_ptr[slot + 1]]
            self._valid[slot] = False
            self._replaced += 1
        else:
            return
        self._df[terms] -= 1
        self.documents -= 1
        self._total_length -= float(self._dl[slot])
        self._dl[slot] = 0

    def pack(self) -> None:
        """Fold the delta into a new main segment (and drop replaced documents for good)."""
        keep = np.repeat(self._valid, np.diff(self._raw_ptr))
        slots = [np.repeat(np.arange(self._rows), np.diff(self._raw_ptr))[keep]]
        terms = [self._raw_terms[keep]]
        counts = [self._raw_counts[keep]]
        for slot, (t, c) in self._delta.items():
            slots.append(np.full(len(t), slot, dtype=np.int64))
            terms.append(t)
            counts.append(c)
        slot_arr = np.concatenate(slots)
        term_arr = np.concatenate(terms)
        count_arr = np.concatenate(counts)
        rows = int(slot_arr.max()) + 1 if len(slot_arr) else 0
        order = np.lexsort((term_arr, slot_arr))
        slot_arr, term_arr, count_arr = slot_arr[order], term_arr[order], count_arr[order]
        self._rows = rows
        self._raw_ptr = np.concatenate([[0], np.cumsum(np.bincount(slot_arr, minlength=rows))])
        self._raw_terms, self._raw_counts = term_arr, count_arr
        self._valid = np.diff(self._raw_ptr) > 0
        self._replaced = 0
        self._avgdl = self._total_length / self.documents if self.documents else 1.0
        length = self._dl[slot_arr] / self._avgdl
        weights = count_arr / (count_arr + K1 * (1 - B + B * length))
        by_term = np.argsort(term_arr, kind="stable")
        self._col_slots = slot_arr[by_term]
        self._col_weights = weights[by_term].astype(np.float32)
        self._col_ptr = np.concatenate(
            [[0], np.cumsum(np.bincount(term_arr, minlength=len(self.vocab)))]
        )
        self._delta = {}
        self._postings = {}

    # -- reading --------------------------------------------------------------------------
    def idf(self, tokens: Sequence[str]) -> dict[int, float]:
        """Each known query term and its weight (idf times how often the query says it)."""
        out: dict[int, float] = {}
        n = self.documents
        for token in tokens:
            term = self.vocab.get(token)
            if term is None:
                continue
            df = float(self._df[term])
            if df <= 0:
                continue
            out[term] = out.get(term, 0.0) + float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def ideal(self, tokens: Sequence[str]) -> float:
        """What a document of average length that holds every query term once would score: a
        fixed scale for one query's BM25 scores. A term the index has never seen counts as
        the rarest possible, so a query that only matches on common words scales low."""
        n = self.documents
        rare = float(np.log(1 + (n + 0.5) / 0.5))
        total = 0.0
        for token in tokens:
            term = self.vocab.get(token)
            df = 0.0 if term is None else float(self._df[term])
            total += float(np.log(1 + (n - df + 0.5) / (df + 0.5))) if df > 0 else rare
        return total / (1 + K1)

    def terms_of(self, slot: int) -> frozenset[int]:
        """The terms of the document in ``slot`` (empty: none)."""
        if slot in self._delta:
            return frozenset(self._delta[slot][0].tolist())
        if slot < self._rows and self._valid[slot]:
            return frozenset(
                self._raw_terms[self._raw_ptr[slot] : self._raw_ptr[slot + 1]].tolist()
            )
        return frozenset()

    def coverage(self, tokens: Sequence[str], held: Sequence[frozenset[int]]) -> list[float]:
        """For each set of terms in ``held``, the share of the query's weight it holds: the
        idf of each distinct query term it contains over the idf of them all (a term the
        index has never seen counts as the rarest, as in ``ideal``), in [0, 1]. The idf is
        taken as if the index held at least ``COVERAGE_DOCUMENTS`` documents: in a cube of a
        handful of memories every word is rare or everywhere, and a share would say more
        about the cube's size than about the memory."""
        n = max(self.documents, COVERAGE_DOCUMENTS)
        rare = float(np.log(1 + (n + 0.5) / 0.5))
        weights: dict[int, float] = {}
        total = 0.0
        for token in dict.fromkeys(tokens):
            term = self.vocab.get(token)
            df = 0.0 if term is None else float(self._df[term])
            weight = float(np.log(1 + (n - df + 0.5) / (df + 0.5))) if df > 0 else rare
            total += weight
            if term is not None and df > 0:
                weights[term] = weight
        if total <= 0:
            return [0.0] * len(held)
        return [
            min(1.0, sum(w for t, w in weights.items() if t in terms) / total) for terms in held
        ]

    def scores(self, tokens: Sequence[str], size: int) -> np.ndarray:
        """BM25 of every slot below ``size`` for the query ``tokens`` (0: no match)."""
        out = np.zeros(size, dtype=np.float32)
        weights = self.idf(tokens)
        columns = len(self._col_ptr) - 1
        for term, weight in weights.items():
            if term < columns:
                start, end = self._col_ptr[term], self._col_ptr[term + 1]
                slots = self._col_slots[start:end]
                inside = slots < size
                out[slots[inside]] += weight * self._col_weights[start:end][inside]
        if self._replaced:  # documents changed since the last pack: drop their old terms
            rows = min(self._rows, size)
            out[:rows] *= self._valid[:rows]
        avgdl = self._avgdl if self._rows else max(self._total_length / max(self.documents, 1), 1)
        for term, weight in weights.items():
            for slot, count in self._postings.get(term, {}).items():
                if slot < size:
                    norm = K1 * (1 - B + B * float(self._dl[slot]) / avgdl)
                    out[slot] += weight * count / (count + norm)
        return out
