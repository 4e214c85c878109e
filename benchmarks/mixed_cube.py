"""Facts and conversation turns in one cube: does one default hold for both?

    uv run python benchmarks/mixed_cube.py --data ../shared/data/locomo/locomo_dev.json

Each LoCoMo conversation's raw turns go into a cube together with the 186 facts of the fact
set (``cubemem bench facts``); the conversation's questions are asked (evidence R@10) and so
are the fact questions (the one right fact first, hit@1), with the default fusion and with
each retriever alone. Prints one JSON line per conversation (cumulative) and the totals.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.bench import facts, locomo
from cubemem.model import MemoryInput, Scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    data = locomo.load(args.data)
    fact_set = facts.load()
    recall: dict[str, list[float]] = {s: [] for s in facts.SYSTEMS}
    first: dict[str, list[bool]] = {s: [] for s in facts.SYSTEMS}
    with tempfile.TemporaryDirectory() as tmp:
        for c, sample in enumerate(data):
            cube = MemCube.create(Path(tmp) / f"mixed-{c}", embedder=embedder)
            locomo.ingest(cube, sample, "raw")
            items = cube.add(
                [
                    MemoryInput(content=f["text"], scope=Scope(user=f["user"]))
                    for f in fact_set.facts
                ]
            )
            by_fact = {f["id"]: item.id for f, item in zip(fact_set.facts, items, strict=True)}
            for system, config in facts.SYSTEMS.items():
                cube.maintenance.retrieval = config
                for q in locomo.questions(sample):
                    hits = cube.search(q.text, k=10)
                    ids = [h.provenance.source_ids for h in hits]
                    recall[system].append(locomo.recall_at(ids, q.evidence, 10))
                for question, answer in fact_set.questions:
                    first[system].append(cube.search(question, k=1)[0].id == by_fact[answer])
            cube.close()
            report = {
                "conversations": c + 1,
                "turn_questions_r10": {s: round(statistics.fmean(v), 4) for s, v in recall.items()},
                "fact_questions_hit1": {s: round(statistics.fmean(v), 4) for s, v in first.items()},
            }
            print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
