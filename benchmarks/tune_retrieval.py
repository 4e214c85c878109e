"""Leave-one-conversation-out tuning of cubemem's fusion weights on a LoCoMo file.

    uv run python benchmarks/tune_retrieval.py --data ../shared/data/locomo/locomo_dev.json

Each conversation is ingested once into a real cube; every configuration of the grid is then
searched through ``MemCube.search``. For each held-out conversation the configuration with the
best R@10 on the other conversations is chosen and scored on the held-out one, so the reported
recall is of a choice that never saw its test questions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.bench import locomo
from cubemem.retrieve import RetrievalConfig

KS = (1, 5, 10, 20)


def grid(lexical_weights, shares, powers) -> list[RetrievalConfig]:
    return [
        RetrievalConfig(lexical_weight=w, neighbour_share=s, lexical_score_power=p)
        for w, s, p in itertools.product(lexical_weights, shares, powers)
    ]


ABLATION = {
    "dense only": RetrievalConfig(
        lexical_weight=0.0, neighbour_share=0.0, lexical_neighbours=False
    ),
    "BM25 only": RetrievalConfig(dense_weight=0.0, neighbour_share=0.0, lexical_neighbours=False),
    "dense + BM25, plain RRF": RetrievalConfig(
        lexical_weight=1.0, lexical_score_power=0.0, neighbour_share=0.0, lexical_neighbours=False
    ),
    "+ neighbour turns in BM25": RetrievalConfig(
        lexical_weight=1.0, lexical_score_power=0.0, neighbour_share=0.0
    ),
    "+ BM25 weight 2, score-aware": RetrievalConfig(neighbour_share=0.0),
    "+ neighbour spread 0.3 (default)": RetrievalConfig(),
}


def evaluate(data, conversations, configs):
    """recall[config index][conversation] = list of per-question {k: recall}."""
    embedder = SentenceTransformerEmbedder()
    scores = {i: {} for i in range(len(configs))}
    with tempfile.TemporaryDirectory() as tmp:
        for c in conversations:
            cube = MemCube.create(Path(tmp) / f"c{c}", embedder=embedder)
            locomo.ingest(cube, data[c], "raw")
            questions = locomo.questions(data[c])
            for i, config in enumerate(configs):
                cube.retrieval = config
                rows = []
                for q in questions:
                    ids = [h.provenance.source_ids for h in cube.search(q.text, k=max(KS))]
                    rows.append({k: locomo.recall_at(ids, q.evidence, k) for k in KS})
                scores[i][c] = rows
            cube.close()
    return scores


def mean(rows, k):
    return statistics.fmean(r[k] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lexical-weights", default="1,1.5,2,3")
    parser.add_argument("--neighbour-shares", default="0,0.2,0.3,0.5")
    parser.add_argument("--score-powers", default="0,0.5")
    parser.add_argument("--ablation", action="store_true", help="what each piece adds")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    data = locomo.load(args.data)
    conversations = list(range(len(data)))
    if args.ablation:
        scores = evaluate(data, conversations, list(ABLATION.values()))
        report = {"ablation": {}}
        for i, name in enumerate(ABLATION):
            rows = [r for c in conversations for r in scores[i][c]]
            report["ablation"][name] = {str(k): round(mean(rows, k), 4) for k in KS}
            print(name, report["ablation"][name])
        _write(args.json, report)
        return

    def floats(text):
        return [float(x) for x in text.split(",")]

    configs = grid(
        floats(args.lexical_weights), floats(args.neighbour_shares), floats(args.score_powers)
    )
    scores = evaluate(data, conversations, configs)
    held_out = []
    for out in conversations:
        train = [c for c in conversations if c != out]
        best = max(scores, key=lambda i: mean([r for c in train for r in scores[i][c]], 10))
        rows = scores[best][out]
        held_out.append((out, configs[best], rows))
        print(
            f"held out {out}: chose {configs[best]} -> "
            + ", ".join(f"R@{k} {mean(rows, k):.4f}" for k in KS)
        )
    all_rows = [r for _, _, rows in held_out for r in rows]
    default = configs.index(RetrievalConfig()) if RetrievalConfig() in configs else None
    report = {
        "held_out": [
            {
                "conversation": out,
                "chose": {
                    "lexical_weight": config.lexical_weight,
                    "neighbour_share": config.neighbour_share,
                    "lexical_score_power": config.lexical_score_power,
                },
                "recall": {str(k): round(mean(rows, k), 4) for k in KS},
            }
            for out, config, rows in held_out
        ],
        "questions": len(all_rows),
        "loco_recall": {str(k): round(mean(all_rows, k), 4) for k in KS},
        "loco_spread_r10": {
            "min": round(min(mean(rows, 10) for _, _, rows in held_out), 4),
            "max": round(max(mean(rows, 10) for _, _, rows in held_out), 4),
        },
        "default_in_sample": None
        if default is None
        else {
            str(k): round(mean([r for c in conversations for r in scores[default][c]], k), 4)
            for k in KS
        },
    }
    print(json.dumps(report))
    _write(args.json, report)


def _write(path: Path | None, report: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
