"""LangChain fixtures."""

from __future__ import annotations

import pytest
from lc_helpers import CubeEmbeddings


@pytest.fixture
def lc_embeddings(embedder) -> CubeEmbeddings:
    return CubeEmbeddings(embedder)
