"""A fresh `cubemem serve`: how long until it is ready, and its first search request beside the
ones after it (the first must not pay for loading the model or the search index).

    uv run python benchmarks/first_request.py --items 2000 --json docs/results/first_request.json

Fills a root's cube with generated memories (the model's vectors), starts `cubemem serve` on
it in a fresh process, polls `/ready`, then times `--requests` searches over HTTP; the first
one's latency is reported beside the median of the rest, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cubemem import MemoryOS
from cubemem.bench.scale import Corpus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(items: int, requests: int) -> dict[str, Any]:
    corpus = Corpus()
    with tempfile.TemporaryDirectory(prefix="cubemem-first-") as tmp:
        root = Path(tmp) / "root"
        with MemoryOS(root) as os_:
            cube = os_.create_cube("bench")
            memories = list(corpus.memories(items))
            for start in range(0, items, 500):
                cube.add(memories[start : start + 500])
        port = _free_port()
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "cubemem.cli", "serve", "--data", root, "--port", f"{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        try:
            key = None
            while key is None:
                line = process.stderr.readline()
                if not line:
                    raise RuntimeError("serve exited before printing its operator key")
                key = line.strip() if line.strip().startswith("cm_") else None
            url = f"http://127.0.0.1:{port}"
            listening = ready = None
            while ready is None:
                try:
                    answer = httpx.get(f"{url}/ready", timeout=5)
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                listening = listening or time.perf_counter() - started
                if answer.status_code == 200:
                    ready = time.perf_counter() - started
                else:
                    time.sleep(0.05)
            headers = {"Authorization": f"Bearer {key}"}
            times = []
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                for _ in range(requests):
                    begin = time.perf_counter()
                    answer = client.post(
                        "/v1/cubes/bench/search", json={"query": corpus.question(), "k": 10}
                    )
                    times.append((time.perf_counter() - begin) * 1000)
                    answer.raise_for_status()
        finally:
            process.terminate()
            process.wait(timeout=60)
    rest = statistics.median(times[1:])
    return {
        "benchmark": "first_request",
        "items": items,
        "listening_s": round(listening or 0, 2),
        "ready_s": round(ready, 2),
        "first_ms": round(times[0], 2),
        "median_rest_ms": round(rest, 2),
        "first_vs_rest": round(times[0] / rest, 2),
        "requests": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = run(args.items, args.requests)
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
