"""Fit (and check) the calibration of ``SearchResult.relevance`` on both dev files.

    uv run python benchmarks/fit_relevance.py \\
        --data ../shared/data/locomo/locomo_dev.json ../shared/data/beam/beam100k_dev.json \\
        --json docs/results/relevance_fit.json

Every conversation goes into its own cube (raw turns, as ``cubemem bench locomo``); each of
its questions (categories 1–4), its abstention questions (BEAM) and 30 questions of the next
conversation (nothing to find) are searched with the shipped retrieval, and each of the top
10 results gives a row: the cosine, the share of the query's words in the memory's own text,
whether it is an assistant's turn, and whether it cites the question's evidence. A logistic
regression on those rows (each file weighted equally) gives ``cubemem.retrieve.RELEVANCE``.
It prints the coefficients fitted on everything, and the AUC of relevance on each
conversation when fitted without it (leave one conversation out), pooled by file.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from cubemem import MemCube
from cubemem.bench import locomo, prompt
from cubemem.model import Filters

DEPTH = 10


def rows_of(path: Path, embedder: object, tmp: Path) -> list[dict[str, object]]:
    data = locomo.load(path)
    out: list[dict[str, object]] = []
    for index, sample in enumerate(data):
        cube = MemCube.create(tmp / f"{path.stem}-{index}", embedder=embedder)
        embedder = cube.embedder
        cube.maintenance.context.clock = locomo._clock(locomo.asked_at(sample))
        locomo.ingest(cube, sample, "raw")
        ctx = cube.maintenance.context
        asked = [(q, True) for q in locomo.questions(sample)]
        asked += [(q, False) for q in locomo.abstentions(sample)]
        if len(data) > 1:
            other = locomo.questions(data[(index + 1) % len(data)])[: locomo.OTHER_QUESTIONS]
            asked += [(q, False) for q in other]
        for q, mine in asked:
            hits = ctx.retriever.search(q.text, DEPTH, Filters(), ctx.clock())
            sources = {i.id: i.provenance.source_ids for i in ctx.store.get([h.id for h in hits])}
            for h in hits:
                cites = mine and bool(q.evidence & set(sources.get(h.id, [])))
                out.append(
                    {
                        "file": path.stem,
                        "conversation": index,
                        "dense": max(0.0, h.dense or 0.0),
                        "own": h.own,
                        "assistant": h.assistant,
                        "evidence": cites,
                    }
                )
        cube.close()
    return out


def features(rows: list[dict[str, object]]) -> np.ndarray:
    d = np.array([r["dense"] for r in rows], dtype=np.float64)
    o = np.array([r["own"] for r in rows], dtype=np.float64)
    a = np.array([r["assistant"] for r in rows], dtype=np.float64)
    return np.stack([np.ones_like(d), d, o, d * o, a], axis=1)


def fit(rows: list[dict[str, object]]) -> np.ndarray:
    """Logistic regression by Newton's method, each file weighted equally."""
    x, y = features(rows), np.array([r["evidence"] for r in rows], dtype=np.float64)
    files = [r["file"] for r in rows]
    counts = {f: files.count(f) for f in set(files)}
    w = np.array([len(rows) / (len(counts) * counts[f]) for f in files])
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ beta))
        hessian = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(len(beta))
        beta -= np.linalg.solve(hessian, x.T @ (w * (p - y)))
    return beta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    embedder = None
    with tempfile.TemporaryDirectory(prefix="cubemem-fit-") as tmp:
        for path in args.data:
            rows += rows_of(path, embedder, Path(tmp))
    beta = fit(rows)
    held: dict[str, tuple[list[float], list[float]]] = {}
    for key in sorted({(r["file"], r["conversation"]) for r in rows}):
        train = [r for r in rows if (r["file"], r["conversation"]) != key]
        test = [r for r in rows if (r["file"], r["conversation"]) == key]
        scores = 1 / (1 + np.exp(-features(test) @ fit(train)))
        pos, neg = held.setdefault(str(key[0]), ([], []))
        for r, s in zip(test, scores, strict=True):
            (pos if r["evidence"] else neg).append(float(s))
    report = {
        "coefficients": [round(float(b), 3) for b in beta],
        "rows": len(rows),
        "loco_auc": {f: round(prompt.auc(p, n) or math.nan, 4) for f, (p, n) in held.items()},
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
