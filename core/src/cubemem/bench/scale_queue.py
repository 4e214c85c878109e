"""Background ingestion at scale: acknowledged add latency and indexed items/s through the
scheduler's queue (SQLite or Redis), beside inline batched ingest, in one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cubemem.bench import percentile
from cubemem.bench.corpus import Corpus
from cubemem.cube import MemCube
from cubemem.embed import Embedder


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
