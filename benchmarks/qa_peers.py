"""Answer-level evaluation of the memory layers people would use instead of cubemem, through
the same harness, answerer and judge as `cubemem bench qa` (``cubemem.bench.qa``):

    uv run python benchmarks/qa_peers.py --system mem0 --dataset locomo \
        --data ../shared/data/locomo/locomo_dev.json --llm-model gpt-4o-mini --json out.json

Every system stores the same turns as ``[date] speaker: text`` with the same embedder
(all-MiniLM-L6-v2 from the offline package), as `benchmarks/compare_locomo.py` does:
- mem0: ``Memory.add(..., infer=False)``, embedded Qdrant on disk;
- langgraph: ``InMemoryStore(index={"embed": MiniLM, "dims": 384})``.
The peers are in the workspace's ``bench`` dependency group; the library never imports them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "False")

from cubemem import SentenceTransformerEmbedder
from cubemem.bench import qa, qa_systems
from cubemem.bench.qa_data import Conversation, Session


def _sibling(name: str) -> Any:
    """A script beside this one, as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lines(session: Session) -> list[tuple[str, str]]:
    when = f"[{session.when:%d %B %Y}] " if session.when else ""
    return [(t.id, f"{when}{t.speaker}: {t.text}") for t in session.turns]


class LangGraphSystem:
    name = "langgraph"

    def __init__(self, embedder: SentenceTransformerEmbedder | None = None) -> None:
        self.embedder = embedder or SentenceTransformerEmbedder()
        self.store: Any = None

    def open(self, conversation: Conversation, workdir: Path) -> bool:
        from langgraph.store.memory import InMemoryStore

        def embed(texts: Sequence[str]) -> list[list[float]]:
            return self.embedder.embed_documents(list(texts)).tolist()

        self.store = InMemoryStore(index={"embed": embed, "dims": 384, "fields": ["text"]})
        return False  # in memory: a resumed run ingests again

    def add(self, session: Session) -> list[str]:
        from langgraph.store.base import PutOp

        lines = _lines(session)
        self.store.batch([PutOp(("memories",), key, {"text": text}) for key, text in lines])
        return [text for _, text in lines]

    def ingested(self) -> None:
        pass

    def search(self, question: str, k: int, now: datetime | None) -> list[str]:
        found = self.store.search(("memories",), query=question, limit=k)
        return [item.value["text"] for item in found]

    def close(self) -> None:
        self.store = None


class Mem0System:
    name = "mem0"

    def __init__(self) -> None:
        self.memory: Any = None
        self.folder: Path | None = None

    def open(self, conversation: Conversation, workdir: Path) -> bool:
        from mem0 import Memory

        self.folder = workdir / f"mem0-{abs(hash(conversation.id))}"
        shutil.rmtree(self.folder, ignore_errors=True)
        self.memory = Memory.from_config(_sibling("compare_locomo").mem0_config(self.folder, "qa"))
        return False

    def add(self, session: Session) -> list[str]:
        lines = _lines(session)
        for _, text in lines:
            self.memory.add([{"role": "user", "content": text}], user_id="qa", infer=False)
        return [text for _, text in lines]

    def ingested(self) -> None:
        pass

    def search(self, question: str, k: int, now: datetime | None) -> list[str]:
        found = self.memory.search(question, top_k=k, filters={"user_id": "qa"}, threshold=0.0)
        return [r["memory"] for r in found["results"]]

    def close(self) -> None:
        if self.memory is not None:
            self.memory.vector_store.client.close()
            self.memory = None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("mem0", "langgraph"), required=True)
    parser.add_argument("--dataset", choices=("locomo", "longmemeval", "halumem"), required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--llm-model", required=True)
    parser.add_argument("--llm-base-url")
    parser.add_argument("--judge-model")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--workdir", type=Path, default=Path("cubemem-qa-peers"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    answer = qa_systems.chat(args.llm_model, args.llm_base_url)
    judge = qa_systems.chat(args.judge_model, args.llm_base_url) if args.judge_model else answer
    system = Mem0System() if args.system == "mem0" else LangGraphSystem()
    folder = args.workdir / args.system
    report = qa.run(
        args.dataset,
        args.data,
        system,
        qa.Clients(answer, judge),
        k=args.k,
        workdir=folder / "stores",
        checkpoint=folder / "checkpoint.jsonl",
        limit=args.limit,
    )
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
