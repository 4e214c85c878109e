"""LoCoMo evidence recall, cubemem beside the memory layers people would use instead.

    uv run python benchmarks/compare_locomo.py --data ../shared/data/locomo/locomo_dev.json \
        --json docs/results/locomo_compare.json --plot docs/img/locomo_compare.png

Every system gets the same turns (``[date] speaker: text``), the same embedder
(all-MiniLM-L6-v2 from the offline package), the same questions and the same k:
- cubemem: ``MemCube.add_messages`` (raw mode) and ``MemCube.search``;
- mem0: ``Memory.add(..., infer=False)`` (what mem0 does without an LLM), Hugging Face
  embedder on the local MiniLM folder, embedded Qdrant on disk;
- langgraph: ``InMemoryStore(index={"embed": MiniLM, "dims": 384})``;
- llamaindex: ``VectorStoreIndex`` over one ``TextNode`` per turn.
The peers are in the workspace's ``bench`` dependency group; the library never imports them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.bench import locomo
from cubemem.embed import bundled_model_path
from cubemem.settings import DEFAULT_EMBEDDER

SYSTEMS = ("cubemem", "mem0", "langgraph", "llamaindex")


class System(Protocol):
    def ingest(self, turns: list[dict[str, Any]], sample: dict[str, Any]) -> int: ...
    def search(self, question: str, k: int) -> list[str]: ...
    def close(self) -> None: ...


def turn_texts(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """Every turn as ``{"id", "text"}``, date and speaker in front, as all systems see it."""
    return [
        {"id": m["id"], "text": f"[{when:%d %B %Y}] {m['speaker']}: {m['text']}"}
        for _, when, messages in locomo.sessions(sample)
        for m in messages
    ]


class Cubemem:
    def __init__(self, workdir: Path, embedder: SentenceTransformerEmbedder) -> None:
        self.cube = MemCube.create(workdir / "cube", embedder=embedder)

    def ingest(self, turns, sample):
        return locomo.ingest(self.cube, sample, "raw")

    def search(self, question, k):
        return [i for h in self.cube.search(question, k=k) for i in h.provenance.source_ids]

    def close(self):
        self.cube.close()


def mem0_config(workdir: Path, collection: str) -> dict[str, Any]:
    """mem0 on the offline MiniLM folder and an embedded Qdrant in ``workdir``."""
    os.environ.setdefault("OPENAI_API_KEY", "unused-with-infer-false")
    return {
        "embedder": {
            "provider": "huggingface",
            "config": {"model": bundled_model_path(DEFAULT_EMBEDDER)},
        },
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "path": str(workdir / "qdrant"),
                "collection_name": collection,
                "embedding_model_dims": 384,
                "on_disk": True,
            },
        },
        "history_db_path": str(workdir / "history.db"),
    }


class Mem0:
    def __init__(self, workdir: Path, embedder: SentenceTransformerEmbedder) -> None:
        from mem0 import Memory

        self.memory = Memory.from_config(mem0_config(workdir, "locomo"))

    def ingest(self, turns, sample):
        for turn in turns:
            self.memory.add(
                [{"role": "user", "content": turn["text"]}],
                user_id="locomo",
                metadata={"dia_id": turn["id"]},
                infer=False,
            )
        return len(turns)

    def search(self, question, k):
        found = self.memory.search(question, top_k=k, filters={"user_id": "locomo"}, threshold=0.0)
        return [r["metadata"]["dia_id"] for r in found["results"]]

    def close(self):
        self.memory.vector_store.client.close()


class LangGraph:
    def __init__(self, workdir: Path, embedder: SentenceTransformerEmbedder) -> None:
        from langgraph.store.memory import InMemoryStore

        def embed(texts: Sequence[str]) -> list[list[float]]:
            return embedder.embed_documents(list(texts)).tolist()

        self.store = InMemoryStore(index={"embed": embed, "dims": 384, "fields": ["text"]})

    def ingest(self, turns, sample):
        from langgraph.store.base import PutOp

        self.store.batch([PutOp(("locomo",), t["id"], {"text": t["text"]}) for t in turns])
        return len(turns)

    def search(self, question, k):
        return [item.key for item in self.store.search(("locomo",), query=question, limit=k)]

    def close(self):
        pass


class LlamaIndex:
    def __init__(self, workdir: Path, embedder: SentenceTransformerEmbedder) -> None:
        from llama_index.core.embeddings import BaseEmbedding

        class MiniLM(BaseEmbedding):
            def _get_query_embedding(self, query: str) -> list[float]:
                return embedder.embed_query(query).tolist()

            async def _aget_query_embedding(self, query: str) -> list[float]:
                return self._get_query_embedding(query)

            def _get_text_embedding(self, text: str) -> list[float]:
                return embedder.embed_query(text).tolist()

            def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
                return embedder.embed_documents(texts).tolist()

        self.embed_model = MiniLM(model_name=DEFAULT_EMBEDDER, embed_batch_size=64)
        self.retriever = None

    def ingest(self, turns, sample):
        from llama_index.core import VectorStoreIndex
        from llama_index.core.schema import TextNode

        nodes = [TextNode(id_=t["id"], text=t["text"]) for t in turns]
        self.index = VectorStoreIndex(nodes, embed_model=self.embed_model)
        return len(nodes)

    def search(self, question, k):
        retriever = self.index.as_retriever(similarity_top_k=k)
        return [n.node.node_id for n in retriever.retrieve(question)]

    def close(self):
        pass


FACTORIES: dict[str, Callable[[Path, SentenceTransformerEmbedder], System]] = {
    "cubemem": Cubemem,
    "mem0": Mem0,
    "langgraph": LangGraph,
    "llamaindex": LlamaIndex,
}


def run_system(
    name: str,
    data: list[dict[str, Any]],
    conversations: Sequence[int],
    ks: Sequence[int],
    embedder: SentenceTransformerEmbedder,
    max_questions: int | None = None,
) -> dict[str, Any]:
    """Recall@k, search latency and ingest speed of one system on the chosen conversations."""
    ks = sorted(set(ks))
    rows: list[dict[int, float]] = []
    latencies: list[float] = []
    items, ingest_s = 0, 0.0
    for index in conversations:
        sample = data[index]
        with tempfile.TemporaryDirectory(prefix=f"compare-{name}-") as tmp:
            system = FACTORIES[name](Path(tmp), embedder)
            turns = turn_texts(sample)
            start = time.perf_counter()
            items += system.ingest(turns, sample)
            ingest_s += time.perf_counter() - start
            for q in locomo.questions(sample)[:max_questions]:
                start = time.perf_counter()
                ids = system.search(q.text, ks[-1])
                latencies.append((time.perf_counter() - start) * 1000)
                rows.append({k: locomo.recall_at([[i] for i in ids], q.evidence, k) for k in ks})
            system.close()
    return {
        "system": name,
        "questions": len(rows),
        "recall": {str(k): round(statistics.fmean(r[k] for r in rows), 4) for k in ks},
        "search_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(statistics.quantiles(latencies, n=20)[-1], 2),
        },
        "ingest_items_per_s": round(items / ingest_s, 1),
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(results[0]["recall"])
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
    for i, r in enumerate(results):
        xs = [j + i * width for j in range(len(ks))]
        ax.bar(xs, [r["recall"][k] for k in ks], width, label=r["system"])
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(ks))])
    ax.set_xticklabels([f"R@{k}" for k in ks])
    ax.set_ylim(0, 1)
    ax.set_ylabel("evidence recall")
    ax.set_title("LoCoMo evidence recall (raw turns, MiniLM, no LLM)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--conversations", default=None, help="comma-separated indexes")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--k", default="1,5,10,20")
    parser.add_argument("--max-questions", type=int, default=None, help="per conversation")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--plot", type=Path, default=None, help="draw a bar chart here (PNG)")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    data = locomo.load(args.data)
    conversations = (
        [int(c) for c in args.conversations.split(",")]
        if args.conversations
        else list(range(len(data)))
    )
    ks = [int(k) for k in args.k.split(",")]
    embedder = SentenceTransformerEmbedder()
    results = []
    for name in systems:
        result = run_system(name, data, conversations, ks, embedder, args.max_questions)
        print(json.dumps(result), flush=True)
        results.append(result)
    report = {"conversations": conversations, "results": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.plot:
        plot(results, args.plot)
    return results


if __name__ == "__main__":
    main()
