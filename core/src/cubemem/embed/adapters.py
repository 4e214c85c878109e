"""Embedders from other libraries and endpoints: a LangChain ``Embeddings``, a LlamaIndex
``BaseEmbedding``, a plain function, an OpenAI-compatible endpoint. Each returns L2-normalised
float32 vectors; ``cubemem.embed.as_embedder`` picks the wrapper."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.llm import openai_client


def _normalised(vectors: Any, count: int, name: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or len(array) != count:
        raise InvalidInputError(
            f"embedder {name!r} returned {array.shape} for {count} texts; it must return one "
            "vector per text"
        )
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


class _Wrapped:
    """An embedder from two functions (documents, query); the dimension is given or probed."""

    def __init__(
        self,
        name: str,
        documents: Callable[[list[str]], Any],
        query: Callable[[str], Any] | None,
        dimension: int | None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"an embedder needs a non-empty name, got {name!r}")
        self._name = name
        self._documents = documents
        self._query = query
        self._dimension = dimension

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed_documents(["dimension probe"]).shape[1])
        return self._dimension

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        try:
            vectors = self._documents(list(texts))
        except (InvalidInputError, BackendUnavailableError):
            raise
        except Exception as exc:
            raise BackendUnavailableError(f"embedder {self._name!r} failed: {exc}") from exc
        return _normalised(vectors, len(texts), self._name)

    def embed_query(self, text: str) -> np.ndarray:
        if self._query is None:
            return self.embed_documents([text])[0]
        try:
            vector = self._query(text)
        except Exception as exc:
            raise BackendUnavailableError(f"embedder {self._name!r} failed: {exc}") from exc
        return _normalised([vector], 1, self._name)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"


class LangChainEmbedder(_Wrapped):
    """A LangChain ``Embeddings`` (``embed_documents`` / ``embed_query``) as a cube's embedder."""

    def __init__(self, embeddings: Any, *, name: str | None = None, dimension: int | None = None):
        super().__init__(
            name or f"langchain:{describe(embeddings)}",
            embeddings.embed_documents,
            embeddings.embed_query,
            dimension,
        )
        self.embeddings = embeddings


class LlamaIndexEmbedder(_Wrapped):
    """A LlamaIndex ``BaseEmbedding`` as a cube's embedder."""

    def __init__(self, embedding: Any, *, name: str | None = None, dimension: int | None = None):
        super().__init__(
            name or f"llamaindex:{describe(embedding)}",
            embedding.get_text_embedding_batch,
            embedding.get_query_embedding,
            dimension,
        )
        self.embedding = embedding


class FunctionEmbedder(_Wrapped):
    """A function from a list of texts to a list of vectors (LangGraph's ``index["embed"]``)."""

    def __init__(
        self,
        embed: Callable[[Sequence[str]], Any],
        *,
        name: str | None = None,
        dimension: int | None = None,
    ) -> None:
        module = getattr(embed, "__module__", None) or "?"
        qualname = getattr(embed, "__qualname__", None) or type(embed).__qualname__
        super().__init__(name or f"function:{module}.{qualname}", embed, None, dimension)


class OpenAIEmbedder(_Wrapped):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint through the official ``openai`` SDK:
    OpenAI, Ollama, vLLM, LM Studio, llama.cpp server ...

    ``base_url`` and ``api_key`` default to ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; a local
    server that ignores keys needs none. The cube records ``openai:<model>``; reopening it
    builds the embedder again from the environment.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        max_retries: int = 3,
    ) -> None:

        self.client = openai_client(
            "OpenAIEmbedder", base_url, api_key, timeout=timeout, max_retries=max_retries
        )
        self.model = model
        self._dimensions = dimensions
        self._batch = batch_size
        super().__init__(f"openai:{model}", self._create, None, dimensions)

    def _create(self, texts: list[str]) -> list[list[float]]:
        import openai

        out: list[list[float]] = []
        extra: dict[str, Any] = {"dimensions": self._dimensions} if self._dimensions else {}
        for start in range(0, len(texts), self._batch):
            chunk = texts[start : start + self._batch]
            try:
                response = self.client.embeddings.create(model=self.model, input=chunk, **extra)
            except openai.OpenAIError as exc:
                raise BackendUnavailableError(
                    f"embeddings endpoint {self.client.base_url} ({self.model!r}) failed: {exc}"
                ) from exc
            out.extend(d.embedding for d in sorted(response.data, key=lambda d: d.index))
        return out


def describe(obj: Any) -> str:
    model = next(
        (
            getattr(obj, attr)
            for attr in ("model", "model_name", "model_id")
            if isinstance(getattr(obj, attr, None), str)
        ),
        None,
    )
    kind = type(obj).__name__
    return f"{kind}:{model}" if model else kind
