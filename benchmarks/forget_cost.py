"""What a forget costs as the cube grows: it reads every memory to find what derives from the
forgotten ones, and the embedded engine rebuilds its vector index from the rows.

    uv run python benchmarks/forget_cost.py --sizes 5000,20000 [--dimension 384]

Vectors are random (a seeded function embedder), so no model runs; each size is one cube of
100 users, and one user's memories (1%) are forgotten. A single ``delete(purge=True)`` beside
it, for scale. Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time

import numpy as np

from cubemem import MemCube


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--dimension", type=int, default=384)
    args = parser.parse_args()

    def embed(texts: list[str]) -> np.ndarray:
        seeds = [int(hashlib.blake2b(t.encode(), digest_size=4).hexdigest(), 16) for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(args.dimension) for s in seeds])

    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        with (
            tempfile.TemporaryDirectory() as folder,
            MemCube.create(f"{folder}/cube", embedder=embed) as cube,
        ):
            for start in range(0, n, 5000):
                stop = min(n, start + 5000)
                cube.add(
                    [
                        {"content": f"note {i}", "scope": {"user": f"u{i % 100}"}}
                        for i in range(start, stop)
                    ]
                )
            started = time.perf_counter()
            gone = cube.forget(user="u7")
            forget_s = time.perf_counter() - started
            victim = cube.list({"user": "u8"}, limit=1)[0].id
            started = time.perf_counter()
            cube.delete(victim, purge=True)
            purge_s = time.perf_counter() - started
        results.append(
            {"memories": n, "forgotten": gone.count, "forget_s": round(forget_s, 2),
             "one_purge_s": round(purge_s, 3)}
        )  # fmt: skip
    print(json.dumps({"dimension": args.dimension, "results": results}))


if __name__ == "__main__":
    main()
