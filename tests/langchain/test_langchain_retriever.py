"""``MemCubeRetriever``: LangChain's own standard retriever tests, plus our metadata and filters."""

from __future__ import annotations

import shutil
import tempfile
from functools import cached_property
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from cubemem import InvalidFilterError, MemCube, SentenceTransformerEmbedder
from cubemem_langchain import MemCubeRetriever

FACTS = [
    ("Ana adopted a grey cat called Miso", "ana", ["pets"]),
    ("Ana is learning the cello", "ana", ["music"]),
    ("Ana's favourite food is ramen", "ana", ["food"]),
    ("Ana visited Lisbon in May", "ana", ["travel"]),
    ("Bob keeps two dogs", "bob", ["pets"]),
]


def make_cube(path: Path, embedder=None) -> MemCube:
    cube = MemCube.create(path, embedder=embedder)
    for text, user, tags in FACTS:
        cube.add(text, scope={"user": user}, tags=tags)
    return cube


class TestMemCubeRetrieverStandard(RetrieversIntegrationTests):
    @cached_property
    def _cube(self) -> MemCube:
        folder = Path(tempfile.mkdtemp(prefix="cubemem-lc-std-"))
        return make_cube(folder / "cube", SentenceTransformerEmbedder())

    @pytest.fixture(autouse=True)
    def _cleanup(self):
        yield
        if "_cube" in self.__dict__:
            self._cube.close()
            shutil.rmtree(self._cube.path.parent, ignore_errors=True)

    @property
    def retriever_constructor(self) -> type[MemCubeRetriever]:
        return MemCubeRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"cube": self._cube}

    @property
    def retriever_query_example(self) -> str:
        return "what pets does Ana have?"


@pytest.fixture
def facts_cube(tmp_path, embedder):
    cube = make_cube(tmp_path / "cube", embedder)
    yield cube
    cube.close()


def test_documents_carry_id_score_scope_and_provenance(facts_cube):
    docs = MemCubeRetriever(cube=facts_cube, k=2).invoke("Ana's cat")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.page_content == "Ana adopted a grey cat called Miso"
    assert facts_cube.get(top.id).content == top.page_content
    assert top.metadata["score"] >= docs[1].metadata["score"]
    assert top.metadata["scope"]["user"] == "ana"
    assert top.metadata["provenance"]["source"] == "api"
    assert top.metadata["version"] == 1
    assert top.metadata["tags"] == ["pets"]


def test_filters_in_constructor_and_per_call(facts_cube):
    bob_only = MemCubeRetriever(cube=facts_cube, k=5, filters={"user": "bob"})
    assert [d.page_content for d in bob_only.invoke("pets")] == ["Bob keeps two dogs"]
    pets = MemCubeRetriever(cube=facts_cube, k=5).invoke("animals", filters={"tags": ["pets"]})
    assert {d.page_content for d in pets} == {
        "Ana adopted a grey cat called Miso",
        "Bob keeps two dogs",
    }


async def test_async_matches_sync(facts_cube):
    retriever = MemCubeRetriever(cube=facts_cube, k=3, filters={"user": "ana"})
    sync = [d.id for d in retriever.invoke("where did Ana travel?")]
    assert [d.id for d in await retriever.ainvoke("where did Ana travel?")] == sync


def test_bad_filter_is_a_clear_error(facts_cube):
    with pytest.raises(InvalidFilterError, match="allowed keys"):
        MemCubeRetriever(cube=facts_cube, filters={"usr": "ana"}).invoke("cat")
