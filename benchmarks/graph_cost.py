"""What the entity graph and the time words cost: ingest, index build and search latency with
them and without, measured in one run on LoCoMo conversations.

    uv run python benchmarks/graph_cost.py --data ../shared/data/locomo/locomo_dev.json \
        --json docs/results/graph_cost.json

- ingest: ``add_messages`` of every session (the model embeds; the graph is not built here);
- graph: the offline name extraction and resolution of every turn (``EntityGraph.put``), the
  cost the search index adds when it follows those writes — reported as a share of ingest;
- search: p50/p95 of every question, each asked with the default configuration and with the
  entity and time signals off, alternating, on the same cube.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.bench import locomo, percentile
from cubemem.graph import EntityGraph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    data = locomo.load(args.data)
    embedder = SentenceTransformerEmbedder()
    embedder.embed_query("warm up")
    ingest_s = graph_s = 0.0
    turns = 0
    on_ms: list[float] = []
    off_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, sample in enumerate(data):
            cube = MemCube.create(Path(tmp) / f"c{index}", embedder=embedder)
            cube.maintenance.context.clock = lambda s=sample: locomo.asked_at(s)
            start = time.perf_counter()
            locomo.ingest(cube, sample, "raw")
            ingest_s += time.perf_counter() - start
            items = cube.list(limit=100_000)
            turns += len(items)
            graph = EntityGraph()
            start = time.perf_counter()
            for slot, item in enumerate(items):
                graph.put(slot, item.scope.user, item.content, item.provenance.speaker)
            graph_s += time.perf_counter() - start
            cube.search("warm up")  # the index is built once, before the timed searches
            default = cube.maintenance.retrieval
            off = replace(default, entity_weight=0.0, time_weight=0.0)
            for q in locomo.questions(sample):
                for config, sink in ((default, on_ms), (off, off_ms)):
                    cube.maintenance.retrieval = config
                    start = time.perf_counter()
                    cube.search(q.text, k=10)
                    sink.append((time.perf_counter() - start) * 1000)
            cube.close()
    report = {
        "conversations": len(data),
        "turns": turns,
        "ingest_s": round(ingest_s, 2),
        "graph_s": round(graph_s, 3),
        "ingest_with_graph_vs_ingest": round((ingest_s + graph_s) / ingest_s, 3),
        "search_ms": {
            "on": {"p50": round(percentile(on_ms, 50), 2), "p95": round(percentile(on_ms, 95), 2)},
            "off": {
                "p50": round(percentile(off_ms, 50), 2),
                "p95": round(percentile(off_ms, 95), 2),
            },
        },
        "p95_on_vs_off": round(percentile(on_ms, 95) / percentile(off_ms, 95), 3),
        "mean_ms_on_vs_off": round(statistics.fmean(on_ms) / statistics.fmean(off_ms), 3),
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
