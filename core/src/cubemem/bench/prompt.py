"""What reaches the prompt, not only what ranks: the recall benchmark's searches read as the
middleware reads them — the top ``k`` results whose ``relevance`` reaches ``min_score`` (the
defaults of ``MemCubeMiddleware`` and the LlamaIndex memory block) are *injected*.

For the questions of a conversation asked of its own cube: the evidence recall of what is
injected, how many memories are injected, the share of them that cite evidence (precision),
and the share of questions with nothing injected. For questions with nothing to find — BEAM's
abstention questions, and each conversation's questions asked of another conversation's cube
(people and events the cube never heard of) — how many are injected all the same. And the
AUC of ``relevance`` as a test of "this result cites evidence" over the top ten results of
every question (own and nothing-to-find together): how well one threshold can separate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cubemem.render import DEFAULT_MIN_SCORE

PROMPT_K = 5
"""The middleware's default ``k``."""
AUC_DEPTH = 10
CURVE = (0.0, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)
"""The thresholds of the precision/recall curve the default ``min_score`` is chosen on."""


@dataclass(frozen=True)
class Asked:
    """One question's results: each result's source ids and relevance, best first."""

    evidence: frozenset[str]
    results: list[tuple[list[str], float]]
    category: int = 0
    ability: str | None = None

    def injected(self, k: int, min_score: float) -> list[tuple[list[str], float]]:
        return [r for r in self.results[:k] if r[1] >= min_score]

    def cites(self, sources: Sequence[str]) -> bool:
        return bool(self.evidence & set(sources))


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The probability that a positive scores above a negative (ties count half)."""
    if not positives or not negatives:
        return None
    values = np.asarray([*positives, *negatives], dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # average ranks, 1-based
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def own(asked: Sequence[Asked], k: int, min_score: float) -> dict[str, float]:
    """What the questions of a conversation asked of its own cube inject."""
    if not asked:
        return {}
    recall, count, citing, empty = [], 0, 0, 0
    for a in asked:
        injected = a.injected(k, min_score)
        found = {s for sources, _ in injected for s in sources}
        recall.append(len(a.evidence & found) / len(a.evidence))
        count += len(injected)
        citing += sum(a.cites(sources) for sources, _ in injected)
        empty += not injected
    return {
        "injected_recall": round(statistics.fmean(recall), 4),
        "mean_injected": round(count / len(asked), 3),
        "precision": round(citing / count, 4) if count else 0.0,
        "nothing_injected": round(empty / len(asked), 4),
    }


def nothing_to_find(asked: Sequence[Asked], k: int, min_score: float) -> dict[str, float]:
    """What questions with nothing to find inject all the same."""
    if not asked:
        return {}
    counts = [len(a.injected(k, min_score)) for a in asked]
    return {
        "questions": len(asked),
        "mean_injected": round(statistics.fmean(counts), 3),
        "anything_injected": round(sum(c > 0 for c in counts) / len(counts), 4),
    }


def report(
    asked: Sequence[Asked],
    abstention: Sequence[Asked],
    elsewhere: Sequence[Asked],
    *,
    k: int = PROMPT_K,
    min_score: float = DEFAULT_MIN_SCORE,
) -> dict[str, object]:
    """The prompt section of the recall benchmark's report."""
    positives = [r for a in asked for s, r in a.results[:AUC_DEPTH] if a.cites(s)]
    negatives = [r for a in asked for s, r in a.results[:AUC_DEPTH] if not a.cites(s)]
    negatives += [r for a in (*abstention, *elsewhere) for _, r in a.results[:AUC_DEPTH]]
    by_category = {
        str(c): own([a for a in asked if a.category == c], k, min_score)
        for c in sorted({a.category for a in asked})
    }
    abilities = sorted({a.ability for a in asked if a.ability})
    by_ability = {b: own([a for a in asked if a.ability == b], k, min_score) for b in abilities}
    value = auc(positives, negatives)
    curve = [
        {
            "min_score": t,
            **own(asked, k, t),
            "abstention_injected": nothing_to_find(abstention, k, t).get("mean_injected"),
            "other_injected": nothing_to_find(elsewhere, k, t).get("mean_injected"),
        }
        for t in CURVE
    ]
    return {
        "k": k,
        "min_score": min_score,
        **own(asked, k, min_score),
        "by_category": by_category,
        "by_ability": by_ability,
        "abstention": nothing_to_find(abstention, k, min_score),
        "other_conversation": nothing_to_find(elsewhere, k, min_score),
        "relevance_auc": None if value is None else round(value, 4),
        "curve": curve,
    }
