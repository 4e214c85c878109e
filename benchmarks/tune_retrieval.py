"""Leave-one-conversation-out tuning of cubemem's fusion on a LoCoMo file, raw turns and
observations alike.

    uv run python benchmarks/tune_retrieval.py --data ../shared/data/locomo/locomo_dev.json \
        --json docs/results/retrieval_loco.json

Each conversation is ingested once per mode into a real cube; every configuration of the grid
is then searched through the cube's retriever (query vectors are computed once and reused, so
the grid costs fusion, not the model). For each held-out conversation the configuration with
the best R@10 on the other conversations is chosen and scored on the held-out one, so the
reported recall is of a choice that never saw its test questions. ``--ablation`` scores named
configurations (each retriever alone, each piece of the default) on every conversation.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.bench import locomo
from cubemem.retrieve import RetrievalConfig

KS = (1, 5, 10, 20)
MODES = ("raw", "observations")


class CachedQueries:
    """The real embedder, with each query's vector computed once for the whole grid."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        self._embedder = embedder
        self.name, self.dimension = embedder.name, embedder.dimension

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embedder.embed_documents(texts)

    @functools.cache  # noqa: B019 (one instance for the script's life)
    def embed_query(self, text: str) -> np.ndarray:
        return self._embedder.embed_query(text)


def grid(
    weights,
    powers,
    second_shares,
    session_shares,
    entity_weights=(0.1,),
    entity_shares=(0.1,),
    time_weights=(0.0,),
    speaker_weights=(0.5,),
) -> list[RetrievalConfig]:
    return [
        RetrievalConfig(
            lexical_weight=w,
            lexical_score_power=p,
            second_neighbour_share=s2,
            session_share=ss,
            entity_weight=ew,
            entity_neighbour_share=es,
            time_weight=tw,
            speaker_weight=sw,
        )
        for w, p, s2, ss, ew, es, tw, sw in itertools.product(
            weights,
            powers,
            second_shares,
            session_shares,
            entity_weights,
            entity_shares,
            time_weights,
            speaker_weights,
        )
    ]


NO_SPREAD = {"neighbour_share": 0.0, "second_neighbour_share": 0.0, "session_share": 0.0}
PREVIOUS = RetrievalConfig(
    fusion="rrf",
    lexical_weight=2.0,
    lexical_score_power=0.5,
    lexical_scale="top",
    short_tokens=False,
    second_neighbour_share=0.0,
    session_share=0.0,
)
ABLATION = {
    "dense only": RetrievalConfig(lexical_weight=0.0, **NO_SPREAD),
    "BM25 only": RetrievalConfig(dense_weight=0.0, **NO_SPREAD),
    "previous default: rank fusion, BM25 x2 scaled by the top score, spread 0.3": PREVIOUS,
    "score fusion, turns alone (no neighbours in BM25, no spreading)": RetrievalConfig(
        lexical_neighbours=False, **NO_SPREAD
    ),
    "+ neighbour turns in BM25": RetrievalConfig(**NO_SPREAD),
    "+ neighbour share 0.3": RetrievalConfig(second_neighbour_share=0.0, session_share=0.0),
    "+ second neighbours 0.2": RetrievalConfig(session_share=0.0),
    "+ session share 0.3 (default)": RetrievalConfig(),
    "default without short tokens": RetrievalConfig(short_tokens=False),
}


def evaluate(data, conversations, configs, mode):
    """recall[config index][conversation] = list of per-question {k: recall}."""
    embedder = CachedQueries(SentenceTransformerEmbedder())
    scores = {i: {} for i in range(len(configs))}
    # configurations that share an index (analyzer, neighbours) run together
    order = sorted(
        range(len(configs)), key=lambda i: (configs[i].short_tokens, configs[i].lexical_neighbours)
    )
    with tempfile.TemporaryDirectory() as tmp:
        for c in conversations:
            cube = MemCube.create(Path(tmp) / f"c{c}", embedder=embedder)
            asked = locomo.asked_at(data[c])
            cube.maintenance.context.clock = lambda asked=asked: asked
            locomo.ingest(cube, data[c], mode)
            questions = locomo.questions(data[c])
            for i in order:
                cube.maintenance.retrieval = configs[i]
                rows = []
                for q in questions:
                    ids = [h.provenance.source_ids for h in cube.search(q.text, k=max(KS))]
                    rows.append({k: locomo.recall_at(ids, q.evidence, k) for k in KS})
                    rows[-1]["category"] = q.category
                scores[i][c] = rows
            cube.close()
    return scores


def mean(rows, k):
    return statistics.fmean(r[k] for r in rows)


def recall(rows):
    return {str(k): round(mean(rows, k), 4) for k in KS}


def knobs(config: RetrievalConfig) -> dict:
    default = asdict(RetrievalConfig())
    return {k: v for k, v in asdict(config).items() if v != default[k]}


def loco(data, conversations, configs, mode) -> dict:
    scores = evaluate(data, conversations, configs, mode)
    held_out = []
    for out in conversations:
        train = [c for c in conversations if c != out]
        best = max(scores, key=lambda i: mean([r for c in train for r in scores[i][c]], 10))
        held_out.append((out, configs[best], scores[best][out]))
        print(
            f"{mode}: held out {out}: chose {knobs(configs[best])} -> {recall(scores[best][out])}"
        )
    all_rows = [r for _, _, rows in held_out for r in rows]
    in_sample = {
        i: mean([r for c in conversations for r in scores[i][c]], 10) for i in range(len(configs))
    }
    best_overall = max(in_sample, key=in_sample.get)
    default = configs.index(RetrievalConfig()) if RetrievalConfig() in configs else None
    return {
        "held_out": [
            {"conversation": out, "chose": knobs(config), "recall": recall(rows)}
            for out, config, rows in held_out
        ],
        "questions": len(all_rows),
        "loco_recall": recall(all_rows),
        "loco_by_category": {
            locomo.CATEGORY_NAMES[cat]: recall([r for r in all_rows if r["category"] == cat])
            for cat in locomo.CATEGORIES
            if any(r["category"] == cat for r in all_rows)
        },
        "loco_spread_r10": {
            "min": round(min(mean(rows, 10) for _, _, rows in held_out), 4),
            "max": round(max(mean(rows, 10) for _, _, rows in held_out), 4),
        },
        "in_sample_r10": {
            json.dumps(knobs(configs[i])): round(in_sample[i], 4) for i in range(len(configs))
        },
        "best_in_sample": {
            "config": knobs(configs[best_overall]),
            "recall": recall([r for c in conversations for r in scores[best_overall][c]]),
        },
        "default_in_sample": None
        if default is None
        else recall([r for c in conversations for r in scores[default][c]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--modes", default="raw,observations")
    parser.add_argument("--lexical-weights", default="0.5,0.7,0.8")
    parser.add_argument("--score-powers", default="1,1.5")
    parser.add_argument("--second-shares", default="0,0.2")
    parser.add_argument("--session-shares", default="0,0.3")
    parser.add_argument("--entity-weights", default="0.1", help="the entity graph's weights")
    parser.add_argument("--entity-shares", default="0.1", help="its second hop's shares")
    parser.add_argument("--time-weights", default="0", help="the time words' weights")
    parser.add_argument("--speaker-weights", default="0.5", help="the speaker signal's weights")
    parser.add_argument("--ablation", action="store_true", help="what each piece adds")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    data = locomo.load(args.data)
    conversations = list(range(len(data)))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report: dict = {"modes": {}}
    if args.ablation:
        for mode in modes:
            scores = evaluate(data, conversations, list(ABLATION.values()), mode)
            report["modes"][mode] = {
                name: recall([r for c in conversations for r in scores[i][c]])
                for i, name in enumerate(ABLATION)
            }
            print(mode, json.dumps(report["modes"][mode], indent=1))
        _write(args.json, report)
        return

    def floats(text):
        return [float(x) for x in text.split(",")]

    configs = grid(
        floats(args.lexical_weights),
        floats(args.score_powers),
        floats(args.second_shares),
        floats(args.session_shares),
        floats(args.entity_weights),
        floats(args.entity_shares),
        floats(args.time_weights),
        floats(args.speaker_weights),
    )
    configs = list(dict.fromkeys([*configs, RetrievalConfig()]))
    for mode in modes:
        report["modes"][mode] = loco(data, conversations, configs, mode)
        print(mode, json.dumps(report["modes"][mode]["loco_recall"]))
    _write(args.json, report)


def _write(path: Path | None, report: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
