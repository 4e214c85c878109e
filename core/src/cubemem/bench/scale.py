"""Scale: ingest speed, search latency, memory and disk as a cube grows to 10^5–10^6 items.

Memories are generated sentences with varied vocabulary, spread over users, sessions and
tags. ``precomputed=True`` swaps the embedder for deterministic random unit vectors, which
separates the cost of the index from the cost of the model and makes 10^6 items feasible.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cubemem.bench import scale_open
from cubemem.bench.corpus import _TAGS, Corpus, RandomEmbedder, rss_mb, search_times
from cubemem.cube import MemCube
from cubemem.embed import Embedder, SentenceTransformerEmbedder
from cubemem.errors import InvalidInputError
from cubemem.model import MemoryInput

__all__ = ["_TAGS", "Corpus", "RandomEmbedder", "rss_mb", "run", "run_size", "search_times"]


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
    precomputed: bool = False,
) -> dict[str, Any]:
    """Build one cube of ``size`` synthetic memories in the engine ``store_url`` names (or
    reuse the one ``workdir`` keeps), close it, and measure it reopened in a fresh process
    (``cubemem.bench.scale_open``): how long the open takes until a first search has run,
    search latency per filter, and that process's RSS.

    ``interleave`` rounds of "add one memory, then search" follow the read-only searches, as
    an agent stores a turn and searches before its next call; their latency is reported beside
    the read-only searches of the same run."""
    from cubemem.settings import Settings
    from cubemem.store import engine_of

    engine = engine_of(store_url)
    path = workdir / f"cube-{engine}-{size}"
    built = path.with_suffix(".json")  # kept cubes: how their ingest went, when it ran
    name = getattr(embedder, "name", None)
    if built.exists():
        record = json.loads(built.read_text(encoding="utf-8"))
        if record.get("embedder") != name:
            raise InvalidInputError(
                f"{path} was built with {record.get('embedder')!r}, not {name!r}; use another "
                "--keep folder"
            )
        if progress:
            progress("ingest", size)
    else:
        corpus = Corpus()
        cube = MemCube.create(path, embedder=embedder, settings=Settings(store_url=store_url))
        ingest_s = _ingest(cube, corpus, size, batch, progress)
        start = time.perf_counter()
        cube.search(corpus.question(), k=10)  # the index from every row, then its file
        store = cube.maintenance.store
        if (
            hasattr(store, "build_vector_index")
            and size > cube.maintenance.retrieval.remote_exact_limit
        ):
            store.build_vector_index(
                wait=True
            )  # PostgreSQL: its HNSW index, built when first needed
        record = {
            "embedder": name,
            "items": size,
            "store": engine,
            "ingest_items_per_s": round(size / ingest_s, 1),
            "index_build_s": round(time.perf_counter() - start, 2),
            # rows in PostgreSQL are the server's disk, not the cube folder's
            "disk_bytes_per_item": round(_disk_bytes(path) / size, 1)
            if engine == "sqlite"
            else None,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        cube.close()
        built.write_text(json.dumps(record), encoding="utf-8")

    def measure() -> dict[str, Any]:
        return scale_open.measure(
            path,
            size=size,
            store_url=store_url,
            precomputed=precomputed,
            queries=queries,
            interleave=interleave,
            embedder=None if precomputed else name,
        )

    measured = measure()
    if measured["index_from"] == "rows":  # a kept cube from before its index had a file
        rebuilt = measured["open_s"]
        measured = {**measure(), "open_from_rows_s": rebuilt}
        if "index_build_s" not in record:
            record["index_build_s"] = rebuilt
            built.write_text(json.dumps(record), encoding="utf-8")
    if progress:
        progress("search", 3 * queries + interleave)
    disk = record.get("disk_bytes_per_item")
    if disk is None and engine == "sqlite":  # a cube kept from before the record had it
        disk = round(_disk_bytes(path) / size, 1)
    return {
        "store": engine,
        "items": size,
        "ingest_items_per_s": record["ingest_items_per_s"],
        # the first search after ingest; for a cube kept from before the record had it, the
        # first reopen, which built the index from the rows
        "index_build_s": record.get("index_build_s"),
        **measured,
        "disk_bytes_per_item": disk,
    }


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
                        precomputed=precomputed,
                    )
                )
    return {
        "benchmark": "scale",
        "embedder": "precomputed random unit vectors" if precomputed else "all-MiniLM-L6-v2",
        "queries": queries,
        "results": results,
    }
