"""The fact-set benchmark: short one-line facts, one right fact per question.

A personal memory is usually a small cube of facts written by tools, ``put`` or an extractor,
not a long conversation; retrieval defaults tuned on conversations must hold here too. The data
(``data/facts.json``, written for this benchmark) holds 186 facts about six people and a team —
every person's name in thirty of them — and one question per fact. Each cube size takes the
first N facts of a fixed shuffle and asks the questions whose fact is in the cube; each system
is the same cube searched with other fusion weights, so the comparison is exact.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cubemem.bench import percentile
from cubemem.cube import MemCube
from cubemem.embed import Embedder
from cubemem.errors import InvalidInputError
from cubemem.model import MemoryInput, Scope
from cubemem.retrieve import RetrievalConfig

SYSTEMS: dict[str, RetrievalConfig] = {
    "default": RetrievalConfig(),
    "dense": RetrievalConfig(lexical_weight=0.0, neighbour_share=0.0),
    "bm25": RetrievalConfig(dense_weight=0.0, neighbour_share=0.0),
}
"""The cube's default fusion beside each retriever alone."""

DEPTH = 10


@dataclass(frozen=True)
class FactSet:
    facts: list[dict[str, Any]]
    questions: list[tuple[str, str]]  # (question, id of the one right fact)


def load(path: Path | None = None) -> FactSet:
    """The bundled fact set, or a file of the same shape."""
    try:
        if path is None:
            text = resources.files("cubemem.bench").joinpath("data/facts.json").read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        raw = json.loads(text)
        facts = [dict(f) for f in raw["facts"]]
        questions = [(q["question"], q["answer"]) for q in raw["questions"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"cannot read fact set {path}: {exc}") from exc
    ids = {f["id"] for f in facts}
    unknown = [a for _, a in questions if a not in ids]
    if unknown:
        raise InvalidInputError(f"questions point at unknown facts: {unknown[:5]}")
    return FactSet(facts, questions)


def run(
    sizes: list[int | None] | None = None,
    *,
    path: Path | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """hit@1, hit@3 and MRR@10 per cube size and system; ``None`` means every fact."""
    data = load(path)
    order = list(data.facts)
    random.Random(0).shuffle(order)
    chosen = sizes or [10, 30, 100, None]
    bad = [s for s in chosen if s is not None and (isinstance(s, bool) or s <= 0)]
    if bad:
        raise InvalidInputError(f"cube sizes must be positive, got {bad}")
    results = []
    with tempfile.TemporaryDirectory(prefix="cubemem-facts-") as tmp:
        for size in chosen:
            facts = order if size is None else order[:size]
            cube = MemCube.create(Path(tmp) / f"facts-{len(facts)}", embedder=embedder)
            embedder = cube.embedder  # load the model once
            items = cube.add(
                [MemoryInput(content=f["text"], scope=Scope(user=f["user"])) for f in facts]
            )
            by_fact = {f["id"]: item.id for f, item in zip(facts, items, strict=True)}
            asked = [(q, by_fact[a]) for q, a in data.questions if a in by_fact]
            for system, config in SYSTEMS.items():
                cube.maintenance.retrieval = config
                ranks, latencies = [], []
                for question, right in asked:
                    start = time.perf_counter()
                    hits = [h.id for h in cube.search(question, k=DEPTH)]
                    latencies.append((time.perf_counter() - start) * 1000)
                    ranks.append(hits.index(right) + 1 if right in hits else None)
                results.append(_row(len(facts), system, ranks, latencies))
            cube.close()
    return {"benchmark": "facts", "facts": len(data.facts), "results": results}


def _row(size: int, system: str, ranks: list[int | None], latencies: list[float]) -> dict:
    def hit(k: int) -> float:
        return round(sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 4)

    return {
        "memories": size,
        "system": system,
        "questions": len(ranks),
        "hit@1": hit(1),
        "hit@3": hit(3),
        "mrr@10": round(statistics.fmean(1 / r if r else 0.0 for r in ranks), 4),
        "search_ms_p95": round(percentile(latencies, 95), 2),
    }
