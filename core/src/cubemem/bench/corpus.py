"""The scale benchmark's synthetic memories and questions, its model-free embedder, and its
timing helpers (shared by the building process and the reopened one)."""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.model import MemoryInput, Scope

_SYLLABLES = "ka ri mo le ta si no ve da lu pe zo mi ra fe ol an ti bo ce".split()
_VERBS = (
    "visited bought cooked painted fixed read planned learned borrowed sold found lost "
    "photographed repaired ordered recommended booked cleaned built designed sketched "
    "wrote about practised played discovered tasted rented shared packed returned described"
).split()
_ADJECTIVES = (
    "old new red blue green tiny huge quiet noisy cheap expensive broken shiny wooden "
    "vintage local strange famous rare ordinary bright dark heavy light spicy sweet"
).split()
_NOUNS = (
    "bicycle guitar recipe novel camera garden kayak painting telescope violin lamp sofa "
    "map jacket tent boat piano notebook teapot bakery museum lake trail concert market "
    "festival workshop library course podcast puzzle chess set sculpture quilt drone"
).split()
_PLACES = (
    "in Lisbon,at the harbour,near the station,in the old town,at the farm,in Kyoto,"
    "at the office,in the mountains,by the river,at the weekend market,in Oslo,at school"
).split(",")
_TIMES = (
    "last week,on Monday,in March,yesterday,two years ago,this morning,over the summer,"
    "after work,on her birthday,during the holidays"
).split(",")
_TAGS = [f"topic-{i}" for i in range(20)]


class RandomEmbedder:
    """Deterministic random unit vectors (seeded by the text): index cost without a model."""

    name = "random-unit-384"
    dimension = 384

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).standard_normal(self.dimension)
            out[i] = v / np.linalg.norm(v)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class Corpus:
    """A reproducible stream of synthetic memories and questions about them."""

    def __init__(self, seed: int = 7, users: int = 100) -> None:
        self._rng = np.random.default_rng(seed)
        rng = np.random.default_rng(seed + 1)
        self.names = sorted(
            {"".join(rng.choice(_SYLLABLES, size=rng.integers(2, 4))).title() for _ in range(400)}
        )
        self.users = [f"user-{i}" for i in range(users)]

    def _pick(self, options: Sequence[str]) -> str:
        return options[int(self._rng.integers(len(options)))]

    def sentence(self) -> str:
        p = self._pick
        return (
            f"{p(self.names)} {p(_VERBS)} the {p(_ADJECTIVES)} {p(_NOUNS)} "
            f"{p(_PLACES)} {p(_TIMES)}."
        )

    def _draw(self) -> tuple[list[str], str, str]:
        tags = list(self._rng.choice(_TAGS, size=int(self._rng.integers(0, 3)), replace=False))
        return tags, self.sentence(), self._pick(self.users)

    def memories(self, count: int, per_session: int = 20) -> Iterator[MemoryInput]:
        for i in range(count):
            tags, content, user = self._draw()
            yield MemoryInput(
                content=content, scope=Scope(user=user, session=f"s{i // per_session}"), tags=tags
            )

    def skip(self, count: int) -> None:
        """Moves the stream past ``count`` memories (a kept cube already holds them), so the
        questions and later memories are those a fresh build would have reached."""
        for _ in range(count):
            self._draw()

    def question(self) -> str:
        p = self._pick
        return f"what did {p(self.names)} {p(_VERBS)} {p(_PLACES)}?"


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def search_times(
    cube: Any,
    corpus: Corpus,
    filters: dict[str, Any] | None,
    queries: int,
    progress: Callable[[str, int], None] | None = None,
) -> list[float]:
    """Milliseconds of each of ``queries`` top-10 searches for the corpus's questions."""
    out = []
    for _ in range(queries):
        question = corpus.question()
        start = time.perf_counter()
        cube.search(question, k=10, filters=filters)
        out.append((time.perf_counter() - start) * 1000)
        if progress:
            progress("search", 1)
    return out
