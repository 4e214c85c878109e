"""Scale: ingest speed, search latency, memory and disk as a cube grows to 10^5–10^6 items.

Memories are generated sentences with varied vocabulary, spread over users, sessions and
tags. ``precomputed=True`` swaps the embedder for deterministic random unit vectors, which
separates the cost of the index from the cost of the model and makes 10^6 items feasible.
"""

from __future__ import annotations

import hashlib
import json
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.bench import percentile
from cubemem.cube import MemCube
from cubemem.embed import Embedder, SentenceTransformerEmbedder
from cubemem.errors import InvalidInputError
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

    def memories(self, count: int, per_session: int = 20) -> Iterator[MemoryInput]:
        for i in range(count):
            tags = list(self._rng.choice(_TAGS, size=int(self._rng.integers(0, 3)), replace=False))
            yield MemoryInput(
                content=self.sentence(),
                scope=Scope(user=self._pick(self.users), session=f"s{i // per_session}"),
                tags=tags,
            )

    def skip(self, count: int) -> None:
        """Moves the stream past ``count`` memories (a kept cube already holds them), so the
        questions and later memories are those a fresh build would have reached."""
        for _ in self.memories(count):
            pass

    def question(self) -> str:
        p = self._pick
        return f"what did {p(self.names)} {p(_VERBS)} {p(_PLACES)}?"


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _ingest(
    cube: MemCube,
    corpus: Corpus,
    size: int,
    batch: int,
    progress: Callable[[str, int], None] | None,
) -> float:
    """Adds ``size`` memories of ``corpus`` in batches; returns the seconds it took."""
    start = time.perf_counter()
    pending: list[MemoryInput] = []
    for item in corpus.memories(size):
        pending.append(item)
        if len(pending) == batch:
            cube.add(pending)
            if progress:
                progress("ingest", len(pending))
            pending = []
    if pending:
        cube.add(pending)
        if progress:
            progress("ingest", len(pending))
    return time.perf_counter() - start


def run_size(
    size: int,
    *,
    queries: int,
    embedder: Embedder,
    workdir: Path,
    batch: int = 1000,
    interleave: int = 0,
    progress: Callable[[str, int], None] | None = None,
    store_url: str = "sqlite",
) -> dict[str, Any]:
    """Build one cube of ``size`` synthetic memories in the engine ``store_url`` names and
    measure it.

    ``interleave`` rounds of "add one memory, then search" follow the read-only searches, as
    an agent stores a turn and searches before its next call; their latency is reported beside
    the read-only searches of the same run."""
    corpus = Corpus()
    from cubemem.settings import Settings
    from cubemem.store import engine_of

    engine = engine_of(store_url)
    path = workdir / f"cube-{engine}-{size}"
    built = path.with_suffix(".json")  # kept cubes: how their ingest went, when it ran
    settings = Settings(store_url=store_url)
    if built.exists():
        record = json.loads(built.read_text(encoding="utf-8"))
        if record.get("embedder") != getattr(embedder, "name", None):
            raise InvalidInputError(
                f"{path} was built with {record.get('embedder')!r}, not "
                f"{getattr(embedder, 'name', None)!r}; use another --keep folder"
            )
        cube = MemCube.open(path, embedder=embedder, settings=settings)
        if cube.count() != size:
            raise InvalidInputError(
                f"{path} holds {cube.count()} memories, not {size}: remove it and its .json"
            )
        ingest_s = size / record["ingest_items_per_s"]
        corpus.skip(size)
        if progress:
            progress("ingest", size)
    else:
        cube = MemCube.create(path, embedder=embedder, settings=settings)
        ingest_s = _ingest(cube, corpus, size, batch, progress)
        built.write_text(
            json.dumps(
                {
                    "embedder": getattr(embedder, "name", None),
                    "items": size,
                    "store": engine,
                    "ingest_items_per_s": round(size / ingest_s, 1),
                    "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            ),
            encoding="utf-8",
        )

    start = time.perf_counter()
    cube.search(corpus.question(), k=10)  # builds the BM25 index once
    build_vector_index = getattr(cube.maintenance.store, "build_vector_index", None)
    if build_vector_index is not None and size > cube.maintenance.retrieval.remote_exact_limit:
        build_vector_index(wait=True)  # PostgreSQL: its HNSW index, built when first needed
    warmup_s = time.perf_counter() - start

    def timed(filters: dict[str, Any] | None) -> list[float]:
        return search_times(cube, corpus, filters, queries, progress)

    unfiltered = timed(None)
    by_user = timed({"user": corpus.users[0]})
    by_user_tag = timed({"user": corpus.users[1], "tags": [_TAGS[0]]})
    after_add = []
    added = []
    for memory in corpus.memories(interleave):
        added.append(cube.add(memory).id)
        question = corpus.question()
        start = time.perf_counter()
        cube.search(question, k=10)
        after_add.append((time.perf_counter() - start) * 1000)
        if progress:
            progress("search", 1)
    for id_ in added:  # a kept cube stays at its size for the next run
        cube.delete(id_, purge=True)
    timings = [("unfiltered", unfiltered), ("user", by_user), ("user+tag", by_user_tag)]
    if after_add:
        timings.append(("after_add", after_add))
    result: dict[str, Any] = {
        "store": engine,
        "items": size,
        "ingest_items_per_s": round(size / ingest_s, 1),
        "index_build_s": round(warmup_s, 2),
        "search_ms": {
            name: {"p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2)}
            for name, v in timings
        },
        "rss_mb": round(_rss_mb(), 1),
        # rows in PostgreSQL are the server's disk, not the cube folder's
        "disk_bytes_per_item": round(_disk_bytes(cube.path) / size, 1)
        if engine == "sqlite"
        else None,
    }
    if after_add:
        result["after_add_vs_read_only_p95"] = round(
            percentile(after_add, 95) / percentile(unfiltered, 95), 2
        )
    cube.close()
    return result


def run(
    sizes: Sequence[int],
    *,
    queries: int = 500,
    precomputed: bool = False,
    interleave: int = 0,
    embedder: Embedder | None = None,
    workdir: Path | None = None,
    progress: Callable[[str, int], None] | None = None,
    stores: Sequence[str] = ("sqlite",),
    keep: Path | None = None,
) -> dict[str, Any]:
    """Measure every size in turn on every store (``sqlite``, ``postgresql://...``), in the
    same run so they compare as ratios; the JSON report lists one entry per size and store."""
    if isinstance(interleave, bool) or not isinstance(interleave, int) or interleave < 0:
        raise InvalidInputError(f"interleave must be an int >= 0, got {interleave!r}")
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise InvalidInputError(f"sizes must be positive ints, got {list(sizes)!r}")
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise InvalidInputError(f"queries must be a positive int, got {queries!r}")
    chosen = RandomEmbedder() if precomputed else (embedder or SentenceTransformerEmbedder())
    results = []
    with tempfile.TemporaryDirectory(prefix="cubemem-scale-", dir=workdir) as tmp:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            for store_url in stores:
                results.append(
                    run_size(
                        size,
                        queries=queries,
                        embedder=chosen,
                        workdir=keep or Path(tmp),
                        interleave=interleave,
                        progress=progress,
                        store_url=store_url,
                    )
                )
    return {
        "benchmark": "scale",
        "embedder": "precomputed random unit vectors" if precomputed else "all-MiniLM-L6-v2",
        "queries": queries,
        "sizes": results,
    }


def run_queue(
    count: int,
    *,
    queue_url: str,
    embedder: Embedder,
    workdir: Path,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Background ingestion through ``queue_url`` beside inline batched ingest, one run.

    Each background ``add`` carries one memory (as a web request would); its latency is the
    acknowledgement (durable enqueue). Indexed items/s runs from the first acknowledgement to
    the last item stored, with the producer and the worker sharing the machine; drained items/s
    is the workers alone on the same tasks queued beforehand. The inline baseline adds the same
    memories in batches of the scheduler's ``task_batch``. Inline and drained are each the best
    of two interleaved runs.
    """
    from cubemem.settings import Settings

    settings = Settings(queue_url=queue_url)
    memories = list(Corpus().memories(count))

    def inline_once(n: int) -> float:
        cube = MemCube.create(workdir / f"inline-{count}-{n}", embedder=embedder, settings=settings)
        start = time.perf_counter()
        for first in range(0, count, settings.task_batch):
            chunk = memories[first : first + settings.task_batch]
            cube.add(chunk)
            if progress:
                progress("inline", len(chunk))
        elapsed = time.perf_counter() - start
        cube.close()
        return elapsed

    def drained_once(n: int) -> float:
        """The workers alone: the same single-item tasks queued first, then drained."""
        idle = settings.model_copy(update={"workers": 0})
        cube = MemCube.create(workdir / f"drained-{count}-{n}", embedder=embedder, settings=idle)
        for memory in memories:
            cube.add(memory, wait=False)
        cube.scheduler.workers = settings.workers
        start = time.perf_counter()
        cube.scheduler.start()
        cube.scheduler.wait(timeout=3600)
        elapsed = time.perf_counter() - start
        if progress:
            progress("drain", count)
        cube.close()
        return elapsed

    # best of two, interleaved, so a noisy neighbour hurts neither side more than the other
    inline_s, drain_s = inline_once(0), drained_once(0)
    inline_s, drain_s = min(inline_s, inline_once(1)), min(drain_s, drained_once(1))

    cube = MemCube.create(workdir / f"queued-{count}", embedder=embedder, settings=settings)
    cube.scheduler.start()
    latencies, ids = [], []
    start = time.perf_counter()
    for memory in memories:
        t0 = time.perf_counter()
        ids.append(cube.add(memory, wait=False))
        latencies.append((time.perf_counter() - t0) * 1000)
        if progress:
            progress("ack", 1)
    acked_s = time.perf_counter() - start
    if not cube.scheduler.wait(ids, timeout=3600):
        raise RuntimeError("the scheduler did not store every item within an hour")
    indexed_s = time.perf_counter() - start
    stored = cube.count()
    cube.close()
    indexed_per_s = count / indexed_s
    inline_per_s = count / inline_s
    return {
        "queue": "redis" if queue_url.startswith(("redis", "unix")) else queue_url,
        "items": count,
        "stored": stored,
        "ack_ms": {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "p99": round(percentile(latencies, 99), 3),
        },
        "acked_per_s": round(count / acked_s),
        "indexed_per_s": round(indexed_per_s),
        "inline_batched_per_s": round(inline_per_s),
        "indexed_vs_inline": round(indexed_per_s / inline_per_s, 2),
        "drained_per_s": round(count / drain_s),
        "drained_vs_inline": round(count / drain_s / inline_per_s, 2),
    }


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
