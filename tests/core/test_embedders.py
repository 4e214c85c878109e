"""Any embedder: LangChain, LlamaIndex, a function, an OpenAI-compatible endpoint over real HTTP;
the embedder's identity in the manifest; reopening with another refused; reindexing."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from llama_index.core.embeddings import MockEmbedding

from cubemem import (
    BackendUnavailableError,
    IncompatibleCubeError,
    InvalidInputError,
    MemCube,
    reindex,
)
from cubemem.embed import (
    FunctionEmbedder,
    LangChainEmbedder,
    LlamaIndexEmbedder,
    OpenAIEmbedder,
    UnavailableEmbedder,
    as_embedder,
)
from cubemem.model import Filters


def hashed(text: str, dims: int = 16) -> list[float]:
    """A deterministic vector: words hashed into buckets (shared words, closer vectors)."""
    vector = [0.0] * dims
    for word in text.lower().split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dims] += 1.0
    return vector


def embed_texts(texts):
    return [hashed(t) for t in texts]


class _Embeddings(BaseHTTPRequestHandler):
    """``POST /v1/embeddings`` as OpenAI serves it; a model named "broken" answers 500."""

    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": hashed(t)}
            for i, t in reversed(list(enumerate(texts)))  # out of order: the client sorts
        ]
        payload = json.dumps(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def openai_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Embeddings.calls = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_langchain_embeddings_makes_a_cube_and_names_it(tmp_path):
    fake = DeterministicFakeEmbedding(size=12)
    with MemCube.create(tmp_path / "c", embedder=fake) as cube:
        assert isinstance(cube.embedder, LangChainEmbedder)
        assert (cube.manifest.embedder, cube.manifest.dimension) == (
            "langchain:DeterministicFakeEmbedding",
            12,
        )
        item = cube.add("Ana keeps bees on the roof")
        (hit,) = cube.search("Ana keeps bees on the roof", k=1)
        # the index scores bfloat16 copies of the vectors: a cosine is within 1e-3 of exact
        assert hit.id == item.id and hit.dense_score == pytest.approx(1.0, abs=1e-3)
        assert np.linalg.norm(cube.embedder.embed_query("x")) == pytest.approx(1.0, abs=1e-5)


def test_a_cube_opened_without_its_custom_embedder_reads_but_does_not_search(tmp_path):
    with MemCube.create(tmp_path / "c", embedder=DeterministicFakeEmbedding(size=12)) as cube:
        cube.add("Ana keeps bees")
    with MemCube.open(tmp_path / "c") as cube:
        assert isinstance(cube.embedder, UnavailableEmbedder)
        assert [m.content for m in cube.list()] == ["Ana keeps bees"]
        with pytest.raises(BackendUnavailableError, match="langchain:DeterministicFakeEmbedding"):
            cube.search("bees")
        with pytest.raises(BackendUnavailableError):
            cube.add("more")
        assert cube.count() == 1
    with MemCube.open(tmp_path / "c", embedder=DeterministicFakeEmbedding(size=12)) as cube:
        assert [h.content for h in cube.search("bees")] == ["Ana keeps bees"]


def test_reopening_with_another_embedder_is_refused(tmp_path, embedder):
    with MemCube.create(tmp_path / "c", embedder=DeterministicFakeEmbedding(size=12)) as cube:
        cube.add("Ana keeps bees")
    for other in (embedder, MockEmbedding(embed_dim=12), DeterministicFakeEmbedding(size=8)):
        with pytest.raises(IncompatibleCubeError, match="DeterministicFakeEmbedding"):
            MemCube.open(tmp_path / "c", embedder=other)


def test_a_llamaindex_embedding_and_a_function(tmp_path):
    li = as_embedder(MockEmbedding(embed_dim=8))
    assert isinstance(li, LlamaIndexEmbedder) and li.dimension == 8
    assert li.name == "llamaindex:MockEmbedding:unknown"
    fn = as_embedder(embed_texts)
    assert isinstance(fn, FunctionEmbedder) and fn.dimension == 16
    assert fn.name == f"function:{__name__}.embed_texts"
    with MemCube.create(tmp_path / "f", embedder=fn) as cube:
        cube.add(["the red door", "a blue boat"])
        assert cube.search("blue boat", k=1)[0].content == "a blue boat"
    with pytest.raises(InvalidInputError, match="cannot use int"):
        as_embedder(42)


def test_an_embedder_that_returns_the_wrong_shape_is_a_clear_error(tmp_path):
    bad = FunctionEmbedder(lambda texts: [[1.0, 0.0]], name="custom:bad", dimension=2)
    with MemCube.create(tmp_path / "c", embedder=bad) as cube:
        with pytest.raises(InvalidInputError, match="one vector per text"):
            cube.add(["one", "two"])
        assert cube.count(Filters.everything()) == 0


def test_openai_compatible_endpoint_over_http(tmp_path, openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    embedder = OpenAIEmbedder("hash-16", base_url=openai_server, batch_size=2)
    assert embedder.name == "openai:hash-16" and embedder.dimension == 16
    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        ids = [i.id for i in cube.add(["Ana keeps bees", "Ben sails", "Caro paints murals"])]
        assert cube.search("Ben sails", k=1)[0].id == ids[1]
    assert {c["path"] for c in _Embeddings.calls} == {"/v1/embeddings"}
    assert _Embeddings.calls[0]["auth"] == "Bearer unused"  # local servers take any key
    # reopening rebuilds the endpoint from the environment
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server)
    with MemCube.open(tmp_path / "c") as cube:
        assert isinstance(cube.embedder, OpenAIEmbedder)
        assert cube.search("Caro paints", k=1)[0].content == "Caro paints murals"


def test_openai_endpoint_errors_are_typed(openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InvalidInputError, match="API key"):
        OpenAIEmbedder("text-embedding-3-small")
    broken = OpenAIEmbedder("broken", base_url=openai_server, max_retries=0)
    with pytest.raises(BackendUnavailableError, match="broken"):
        broken.embed_documents(["x"])


def test_reindex_moves_a_cube_to_another_embedder(tmp_path, embedder, openai_server, monkeypatch):
    from typer.testing import CliRunner

    from cubemem.cli import app

    with MemCube.create(tmp_path / "c", embedder=embedder) as cube:
        item = cube.add("Ana keeps bees")
        cube.update(item.id, "Ana keeps bees and hens")
        gone = cube.add("Ben sails")
        cube.delete(gone.id)
        before = cube.manifest
    with reindex(tmp_path / "c", DeterministicFakeEmbedding(size=12)) as cube:
        assert (cube.manifest.id, cube.manifest.embedder, cube.manifest.dimension) == (
            before.id,
            "langchain:DeterministicFakeEmbedding",
            12,
        )
        assert [v.content for v in cube.history(item.id)] == [
            "Ana keeps bees",
            "Ana keeps bees and hens",
        ]
        assert cube.get(gone.id).status.value == "deleted"
        assert cube.search("Ana keeps bees and hens", k=1)[0].id == item.id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # nothing left beside it
    # and from the command line, to an OpenAI-compatible endpoint
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server)
    result = CliRunner().invoke(
        app, ["reindex", "--embedder", "openai:hash-16", "-c", str(tmp_path / "c")]
    )
    assert result.exit_code == 0, result.output
    assert "openai:hash-16 (dimension 16)" in result.output
    with MemCube.open(tmp_path / "c") as cube:
        assert cube.search("bees and hens", k=1)[0].id == item.id


@pytest.mark.parametrize(
    "spelling",
    [
        "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers:all-MiniLM-L6-v2",  # LangChain's provider:model
        "all-MiniLM-L6-v2",  # as sentence-transformers itself takes it
    ],
)
def test_the_default_model_in_any_spelling_opens_the_same_cube(tmp_path, spelling):
    from cubemem.settings import DEFAULT_EMBEDDER

    assert as_embedder(spelling).name == DEFAULT_EMBEDDER
    with MemCube.create(tmp_path / "c", embedder=as_embedder(spelling)) as cube:
        assert cube.manifest.embedder == DEFAULT_EMBEDDER
    with MemCube.open(tmp_path / "c", embedder=as_embedder(DEFAULT_EMBEDDER)):
        pass  # the one spelling in the manifest: no IncompatibleCubeError


def test_a_new_cube_reads_the_dimension_from_the_model_files_without_loading_it(tmp_path):
    from cubemem.embed import SentenceTransformerEmbedder, bundled_model_path
    from cubemem.embed.configured import configured_dimension

    fresh = SentenceTransformerEmbedder()
    with MemCube.create(tmp_path / "c", embedder=fresh) as cube:
        assert cube.manifest.dimension == 384
    assert not fresh.loaded  # the model was never loaded to make the cube
    assert configured_dimension(bundled_model_path(fresh.name)) == 384
    assert configured_dimension(str(tmp_path / "not-a-model")) is None  # then: load and ask
    assert fresh.embed_query("tea").shape == (384,)  # and the loaded model agrees


def test_a_query_embeds_as_the_same_text_among_documents(embedder):
    """``embed_query`` skips ``encode``'s per-call set-up, not its arithmetic."""
    texts = ["what is Ana allergic to?", "x", "Caroline went to the LGBTQ support group " * 30]
    batch = embedder.embed_documents(texts)
    for text, row in zip(texts, batch, strict=True):
        alone = embedder.embed_query(text)
        assert alone.dtype == np.float32 and alone.shape == row.shape
        np.testing.assert_allclose(alone, row, atol=1e-6)
