"""Shared fixtures: the real MiniLM embedder, loaded once per test session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from cubemem import MemCube, SentenceTransformerEmbedder
from cubemem.model import Filters


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder()
    model.embed_query("warm up")
    return model


@pytest.fixture
def cube(tmp_path, embedder):
    with MemCube.create(tmp_path / "cube", embedder=embedder) as c:
        yield c


EVERYTHING = Filters.everything()


def snapshot(cube: MemCube) -> list[tuple[dict, list[dict]]]:
    """Every memory of every status with its full history, to prove nothing changed."""
    return [
        (item.model_dump(), [v.model_dump() for v in cube.history(item.id)])
        for item in cube.iter(EVERYTHING)
    ]


@pytest.fixture(name="snapshot")
def snapshot_fixture():
    return snapshot
