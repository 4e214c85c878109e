"""The scale benchmark's reopened cube: a fresh process opens a cube the benchmark built (and
closed) and measures what a user's next process gets.

``open_s`` runs from before ``MemCube.open`` to the end of the first (unfiltered) search: the
store, the persisted search index (``cubemem.index_file``) and, for an unfiltered search past
the exact limit, the vector index's own files. The model is loaded before the clock starts
(``model_s``): it costs the same at every size. Then the searches per filter, the
add-then-search rounds, and the process's RSS at the end, which holds the index and the
mapped pages the searches touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHILD = """
import json, sys
from cubemem.bench import scale_open
print("RESULT " + json.dumps(scale_open.reopened(**json.loads(sys.argv[1]))))
"""


def measure(
    path: Path,
    *,
    size: int,
    store_url: str,
    precomputed: bool,
    queries: int,
    interleave: int,
    embedder: str | None = None,
) -> dict[str, Any]:
    """``reopened`` in a child process; its result."""
    args = {
        "path": str(path),
        "size": size,
        "store_url": store_url,
        "embedder": "random" if precomputed else embedder,
        "queries": queries,
        "interleave": interleave,
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=6 * 3600,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise RuntimeError(f"the reopened cube's measurement failed: {done.stderr[-2000:]}")


def reopened(
    path: str,
    size: int,
    store_url: str,
    embedder: str | None,
    queries: int,
    interleave: int,
) -> dict[str, Any]:
    """Open the cube at ``path`` (holding ``size`` memories of ``Corpus()``) and measure it."""
    from cubemem import MemCube
    from cubemem.bench import percentile
    from cubemem.bench.corpus import _TAGS, Corpus, RandomEmbedder, rss_mb, search_times
    from cubemem.embed import SentenceTransformerEmbedder
    from cubemem.settings import Settings

    corpus = Corpus()
    corpus.skip(size)  # the questions and new memories a fresh build would have reached
    start = time.perf_counter()
    model = (
        RandomEmbedder()
        if embedder == "random"
        else SentenceTransformerEmbedder(*([embedder] if embedder else []))
    )
    model.embed_query("load the model")
    model_s = time.perf_counter() - start

    start = time.perf_counter()
    cube = MemCube.open(Path(path), embedder=model, settings=Settings(store_url=store_url))
    opened = time.perf_counter() - start
    cube.search(corpus.question(), k=10)
    open_s = time.perf_counter() - start
    origin = cube.maintenance.context.retriever.origin

    unfiltered = search_times(cube, corpus, None, queries)
    by_user = search_times(cube, corpus, {"user": corpus.users[0]}, queries)
    by_user_tag = search_times(cube, corpus, {"user": corpus.users[1], "tags": [_TAGS[0]]}, queries)
    after_add, added = [], []
    for memory in corpus.memories(interleave):
        added.append(cube.add(memory).id)
        question = corpus.question()
        begin = time.perf_counter()
        cube.search(question, k=10)
        after_add.append((time.perf_counter() - begin) * 1000)
    rss = rss_mb()
    for id_ in added:  # a kept cube stays at its size for the next run
        cube.delete(id_, purge=True)
    cube.close()
    timings = [("unfiltered", unfiltered), ("user", by_user), ("user+tag", by_user_tag)]
    if after_add:
        timings.append(("after_add", after_add))
    result: dict[str, Any] = {
        "open_s": round(open_s, 3),
        "open_store_s": round(opened, 3),
        "index_from": origin,
        "model_s": round(model_s, 2),
        "search_ms": {
            name: {"p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2)}
            for name, v in timings
        },
        "rss_mb": round(rss, 1),
    }
    if after_add:
        result["after_add_vs_read_only_p95"] = round(
            percentile(after_add, 95) / percentile(unfiltered, 95), 2
        )
    return result
