"""How ``SearchResult.relevance`` separates right memories from wrong and off-topic ones.

    uv run python benchmarks/relevance.py [--locomo ../shared/data/locomo/locomo_dev.json]

For the bundled fact set, the bundled inference questions (``cubemem/bench/data/
inference.json``: questions that need a memory sharing none of their words) and (optionally)
the first LoCoMo conversation of a file, every question's top 10 are split into the right
memory (the fact / an evidence turn) and the rest; off-topic questions (nothing in the cube
answers them) give the third group. It prints the share of each group kept at thresholds
0.1–0.45 (and, for the inference set, how many questions get their memory into the top 5) —
the basis of the adapters' default ``min_score`` (docs/concepts.md, "Relevance").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from cubemem import MemCube, MemoryInput
from cubemem.bench import facts, locomo

OFF_TOPIC = [
    "what languages do I speak?",
    "recommend a good sci-fi novel",
    "how do I fix a flat bicycle tyre",
    "what is the capital of Peru",
    "tell me a joke about penguins",
    "which programming language should I learn",
    "what is my cello teacher's name",
    "how much does a Tesla cost",
]
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
INFERENCE = Path(facts.__file__).parent / "data" / "inference.json"


def _summary(right: list[float], wrong: list[float], off: list[float]) -> dict[str, object]:
    def kept(values: list[float], t: float) -> float:
        return round(float(np.mean(np.asarray(values) >= t)), 3)

    return {
        "right_median": round(float(np.median(right)), 3),
        "wrong_median": round(float(np.median(wrong)), 3),
        "off_topic_median": round(float(np.median(off)), 3),
        "kept": {
            str(t): {"right": kept(right, t), "wrong": kept(wrong, t), "off_topic": kept(off, t)}
            for t in THRESHOLDS
        },
    }


def fact_set(root: Path) -> dict[str, object]:
    data = facts.load()
    with MemCube.create(root / "facts") as cube:
        added = cube.add([MemoryInput(content=f["text"]) for f in data.facts])
        ids = {f["id"]: item.id for f, item in zip(data.facts, added, strict=True)}
        right, wrong = [], []
        for question, answer in data.questions:
            for hit in cube.search(question, k=10):
                (right if hit.id == ids[answer] else wrong).append(hit.relevance)
        off = [h.relevance for q in OFF_TOPIC for h in cube.search(q, k=5)]
    return _summary(right, wrong, off)


def inference_set(root: Path) -> dict[str, object]:
    """Also ``answered``: the share of questions whose right memory is in the top 5 at or
    above each threshold (what an adapter injecting 5 would show)."""
    data = json.loads(INFERENCE.read_text(encoding="utf-8"))
    with MemCube.create(root / "inference") as cube:
        pairs = [(cube.add(memory).id, question) for memory, question in data["pairs"]]
        cube.add(list(data["distractors"]))
        right, wrong, best = [], [], []
        for answer, question in pairs:
            hits = cube.search(question, k=10)
            for hit in hits:
                (right if hit.id == answer else wrong).append(hit.relevance)
            found = [h.relevance for h in hits[:5] if h.id == answer]
            best.append(found[0] if found else -1.0)
        off = [h.relevance for q in OFF_TOPIC for h in cube.search(q, k=5)]
    summary = _summary(right, wrong, off)
    summary["answered"] = {
        str(t): round(float(np.mean(np.asarray(best) >= t)), 3) for t in THRESHOLDS
    }
    return summary


def conversation(path: Path, root: Path) -> dict[str, object]:
    sample = locomo.load(path)[0]
    with MemCube.create(root / "locomo") as cube:
        locomo.ingest(cube, sample, "raw")
        right, wrong = [], []
        for q in locomo.questions(sample):
            for hit in cube.search(q.text, k=10):
                hit_ids = set(hit.provenance.source_ids)
                (right if hit_ids & q.evidence else wrong).append(hit.relevance)
        off = [h.relevance for q in OFF_TOPIC for h in cube.search(q, k=5)]
    return _summary(right, wrong, off)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locomo", type=Path, help="A LoCoMo JSON file (first conversation).")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {"facts": fact_set(Path(tmp)), "inference": inference_set(Path(tmp))}
        if args.locomo:
            report["locomo_conversation_0"] = conversation(args.locomo, Path(tmp))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
