"""A MemCube as a LlamaIndex retriever: query engine and filters — offline, with MockLLM.

Run: uv run python examples/llamaindex_retriever.py [FOLDER]

With a real LLM, pass it instead of MockLLM, e.g.

    from llama_index.llms.openai import OpenAI          # pip install llama-index-llms-openai
    engine = RetrieverQueryEngine.from_args(retriever, llm=OpenAI(model="gpt-4.1-mini"))

MockLLM answers by echoing its prompt, which shows exactly what the retriever contributed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from cubemem import MemCube
from cubemem_llamaindex import MemCubeRetriever


def main(folder: Path) -> None:
    with MemCube.create(folder / "memory") as cube:
        cube.add_messages(
            [
                {"speaker": "Ana", "text": "We finally booked the trip to Kyoto for April"},
                {"speaker": "Ben", "text": "Don't forget your rail pass this time"},
            ],
            session="2024-02-11",
            timestamp="2024-02-11T20:00:00",
            scope={"user": "ana"},
        )
        cube.add("Ana is allergic to shellfish", scope={"user": "ana"}, metadata={"year": 2021})
        cube.add("Ben collects vinyl records", scope={"user": "ben"}, metadata={"year": 2023})

        retriever = MemCubeRetriever(cube, similarity_top_k=2, filters={"user": "ana"})
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
        response = engine.query("Where is Ana travelling in April?")
        for hit in response.source_nodes:
            print(f"{hit.score:.3f}  {hit.node.get_content()}  (memory {hit.node.node_id})")

        # LlamaIndex MetadataFilters map onto cubemem filters
        recent = MetadataFilters(
            filters=[MetadataFilter(key="year", value=2022, operator=FilterOperator.GTE)]
        )
        print(
            "since 2022:",
            [
                n.node.get_content()
                for n in MemCubeRetriever(cube, filters=recent).retrieve("hobbies")
            ],
        )


if __name__ == "__main__":  # a folder to keep the cube in, else a temporary one
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(sys.argv[1] if len(sys.argv) > 1 else tmp)
        main(folder)
