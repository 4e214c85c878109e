"""Two ways to keep a lexical index current, timed on the scale benchmark's sentences.

    uv run python benchmarks/lexical_options.py --items 100000

- SQLite FTS5 (BM25 ranking built in, rows updated in the write transaction): each document
  is the analysed tokens of a memory and its two neighbours; a query is the OR of its tokens,
  ranked by ``bm25()``.
- cubemem's in-memory ``BM25Index`` (a packed main segment plus a delta) over the same
  documents.

Prints the p50/p95 of query time for each and of a single-document update.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from cubemem.bench.scale import Corpus
from cubemem.lexical import Analyzer, BM25Index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    analyzer, corpus = Analyzer(), Corpus()
    tokens = [analyzer(corpus.sentence()) for _ in range(args.items)]
    docs = [[t for d in tokens[max(0, i - 1) : i + 2] for t in d] for i in range(args.items)]
    questions = [analyzer(corpus.question()) for _ in range(args.queries)]

    def timed(fn, inputs):
        out = []
        for x in inputs:
            start = time.perf_counter()
            fn(x)
            out.append((time.perf_counter() - start) * 1000)
        return {
            "p50": round(float(np.percentile(out, 50)), 3),
            "p95": round(float(np.percentile(out, 95)), 3),
        }

    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "fts.sqlite3", isolation_level=None)
        db.execute("CREATE VIRTUAL TABLE lexical USING fts5(body, tokenize='unicode61')")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO lexical (rowid, body) VALUES (?, ?)",
            [(i + 1, " ".join(d)) for i, d in enumerate(docs)],
        )
        db.execute("COMMIT")

        def fts_query(q):
            match = " OR ".join(f'"{t}"' for t in q)
            db.execute(
                "SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ? "
                "ORDER BY bm25(lexical) LIMIT 400",
                (match,),
            ).fetchall()

        def fts_update(i):
            db.execute("BEGIN")
            db.execute("DELETE FROM lexical WHERE rowid = ?", (i + 1,))
            db.execute(
                "INSERT INTO lexical (rowid, body) VALUES (?, ?)", (i + 1, " ".join(docs[i]))
            )
            db.execute("COMMIT")

        fts = {"query_ms": timed(fts_query, questions), "update_ms": timed(fts_update, range(200))}
        db.close()

    index = BM25Index()
    index.set_many(list(enumerate(docs)))
    n = args.items

    def memory_query(q):
        scores = index.scores(q, n)
        np.argpartition(-scores, 400)[:400]

    memory = {
        "query_ms": timed(memory_query, questions),
        "update_ms": timed(lambda i: index.set_many([(i, docs[i])]), range(200)),
    }
    print(json.dumps({"items": args.items, "fts5": fts, "in_memory_bm25": memory}))


if __name__ == "__main__":
    main()
