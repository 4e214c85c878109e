"""Chroma's view of a cubemem embedder, registered so Chroma never loads its own ONNX model."""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from cubemem.embed import Embedder, SentenceTransformerEmbedder


@register_embedding_function
class CubememEmbeddingFunction(EmbeddingFunction[Documents]):
    """Embeds with the cube's own embedder (cubemem passes vectors explicitly anyway)."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._embedder.embed_documents(list(input)))

    @staticmethod
    def name() -> str:
        return "cubemem"

    def default_space(self) -> Space:
        return "ip"

    def supported_spaces(self) -> list[Space]:
        return ["ip", "cosine"]

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self._embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> CubememEmbeddingFunction:
        return CubememEmbeddingFunction(SentenceTransformerEmbedder(config["embedder"]))
