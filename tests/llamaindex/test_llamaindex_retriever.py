"""``MemCubeRetriever`` in real LlamaIndex query engines and tools."""

from __future__ import annotations

from datetime import datetime

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.tools import RetrieverTool
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from cubemem import InvalidFilterError
from cubemem_llamaindex import MemCubeRetriever


@pytest.fixture
def facts(cube):
    cube.add(
        "Ana adopted a grey cat called Miso",
        scope={"user": "ana"},
        tags=["pets"],
        metadata={"year": 2021},
    )
    cube.add(
        "Ana is learning the cello", scope={"user": "ana"}, tags=["music"], metadata={"year": 2023}
    )
    cube.add("Ana moved to Porto", scope={"user": "ana"}, tags=["home"], metadata={"year": 2024})
    cube.add("Bob keeps two dogs", scope={"user": "bob"}, tags=["pets"], metadata={"year": 2022})
    cube.add_messages(
        [{"speaker": "Ana", "text": "My cat Miso hates the vacuum"}],
        session="s1",
        timestamp="2024-03-02T10:00:00",
        scope={"user": "ana"},
    )
    return cube


def texts(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.get_content() for n in nodes]


def test_query_engine_returns_our_nodes_with_scores_and_metadata(facts):
    retriever = MemCubeRetriever(facts, similarity_top_k=2, filters={"user": "ana"})
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query("What is the name of Ana's cat?")
    nodes = response.source_nodes
    assert len(nodes) == 2
    assert all("Miso" in t for t in texts(nodes))
    top = nodes[0]
    assert top.score is not None and top.score >= nodes[1].score
    assert facts.get(top.node.node_id).content == top.node.get_content()
    meta = top.node.metadata
    assert meta["scope"]["user"] == "ana" and meta["version"] == 1
    assert set(meta) >= {"scope", "provenance", "version", "created_at"}
    assert datetime.fromisoformat(meta["created_at"])
    assert "Miso" in str(response)  # MockLLM echoes the prompt, which holds our nodes


async def test_async_query_engine(facts):
    retriever = MemCubeRetriever(facts, similarity_top_k=1, filters={"user": "bob"})
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = await engine.aquery("what pets?")
    assert texts(response.source_nodes) == ["Bob keeps two dogs"]
    nodes = await retriever.aretrieve("what pets?")
    assert texts(nodes) == ["Bob keeps two dogs"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([MetadataFilter(key="user", value="bob")], {"Bob keeps two dogs"}),
        (
            [MetadataFilter(key="tags", value="pets")],
            {"Ana adopted a grey cat called Miso", "Bob keeps two dogs"},
        ),
        (
            [
                MetadataFilter(key="user", value="ana"),
                MetadataFilter(key="year", value=2022, operator=FilterOperator.GT),
            ],
            {"Ana is learning the cello", "Ana moved to Porto"},
        ),
        (
            [
                MetadataFilter(key="year", value=2022, operator=FilterOperator.GTE),
                MetadataFilter(key="year", value=2024, operator=FilterOperator.LT),
            ],
            {"Bob keeps two dogs", "Ana is learning the cello"},
        ),
        (
            [MetadataFilter(key="year", value=[2021, 2024], operator=FilterOperator.IN)],
            {"Ana adopted a grey cat called Miso", "Ana moved to Porto"},
        ),
        ([MetadataFilter(key="session", value="s1")], {"My cat Miso hates the vacuum"}),
        (
            [
                MetadataFilter(
                    key="event_time", value="2025-01-01T00:00:00", operator=FilterOperator.LT
                )
            ],
            {"My cat Miso hates the vacuum"},
        ),
    ],
)
def test_metadata_filters_map_onto_cubemem_filters(facts, filters, expected):
    retriever = MemCubeRetriever(
        facts, similarity_top_k=10, filters=MetadataFilters(filters=filters)
    )
    assert set(texts(retriever.retrieve("Ana"))) == expected


@pytest.mark.parametrize(
    "filters",
    [
        MetadataFilters(
            filters=[MetadataFilter(key="user", value="ana", operator=FilterOperator.NE)]
        ),
        MetadataFilters(
            filters=[MetadataFilter(key="note", value="cat", operator=FilterOperator.TEXT_MATCH)]
        ),
        MetadataFilters(
            filters=[
                MetadataFilter(key="user", value="ana"),
                MetadataFilter(key="user", value="bob"),
            ],
            condition=FilterCondition.OR,
        ),
        {"usr": "ana"},
    ],
)
def test_unsupported_filters_are_clear_errors(facts, filters):
    with pytest.raises(InvalidFilterError, match=r"operator|AND|allowed keys"):
        MemCubeRetriever(facts, filters=filters)


def test_retriever_tool(facts):
    tool = RetrieverTool.from_defaults(
        MemCubeRetriever(facts, similarity_top_k=1, filters={"user": "ana"}),
        name="ana_memories",
        description="What we know about Ana",
    )
    output = tool.call("which city did Ana move to?")
    assert "Ana moved to Porto" in output.content
    assert tool.metadata.name == "ana_memories"


def test_query_bundle_and_bad_k(facts):
    nodes = MemCubeRetriever(facts, similarity_top_k=3).retrieve(QueryBundle("cello lessons"))
    assert texts(nodes)[0] == "Ana is learning the cello"
    with pytest.raises(ValueError):
        MemCubeRetriever(facts, similarity_top_k=0)


def test_a_key_given_twice_keeps_both_conditions(cube):
    """An app that appends its own ``user == current`` to caller-supplied filters must not
    leak: conflicting equalities match nothing (they used to keep only the last)."""
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )

    from cubemem import InvalidFilterError
    from cubemem_llamaindex import MemCubeRetriever
    from cubemem_llamaindex.retriever import to_cubemem_filters

    cube.add("Ana's locker code is 4471", scope={"user": "ana"}, metadata={"year": 2024})
    cube.add("Bob's locker code is 9120", scope={"user": "bob"}, metadata={"year": 2021})
    caller = MetadataFilter(key="user", value="bob")
    appended = MetadataFilters(filters=[caller, MetadataFilter(key="user", value="ana")])
    assert MemCubeRetriever(cube, filters=appended).retrieve("locker code") == []
    with pytest.raises(InvalidFilterError, match="never match"):
        to_cubemem_filters(appended)
    years = MetadataFilters(
        filters=[
            MetadataFilter(key="year", value=2020, operator=FilterOperator.GT),
            MetadataFilter(key="year", value=2023, operator=FilterOperator.GT),
            MetadataFilter(key="year", value=2021, operator=FilterOperator.NE),
            MetadataFilter(key="year", value=2022, operator=FilterOperator.NE),
        ]
    )
    assert to_cubemem_filters(years).metadata == {"year": {"$gt": 2023, "$nin": [2021, 2022]}}
    found = MemCubeRetriever(cube, filters=years).retrieve("locker code")
    assert [n.node.get_content() for n in found] == ["Ana's locker code is 4471"]
