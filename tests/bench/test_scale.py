"""The scale benchmark's real code path on small sizes; no timing assertions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cubemem.bench import scale
from cubemem.cli import app
from cubemem.errors import InvalidInputError


def test_corpus_is_varied_and_reproducible():
    a, b = scale.Corpus(seed=3), scale.Corpus(seed=3)
    first = [m.content for m in a.memories(200)]
    assert first == [m.content for m in b.memories(200)]
    assert len(set(first)) > 190
    assert len({w for s in first for w in s.split()}) > 150


def test_random_embedder_is_deterministic_unit_vectors():
    e = scale.RandomEmbedder()
    v = e.embed_documents(["a", "b", "a"])
    assert v.shape == (3, 384)
    assert (v[0] == v[2]).all() and not (v[0] == v[1]).all()
    assert abs(float((v[1] ** 2).sum()) - 1.0) < 1e-5


@pytest.mark.parametrize("precomputed", [True, False])
def test_cli_reports_each_size(tmp_path, embedder, precomputed):
    out = tmp_path / "scale.json"
    args = ["bench", "scale", "--items", "300,600", "--queries", "5", "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--precomputed"] if precomputed else args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [r["items"] for r in report["results"]] == [300, 600]
    for r in report["results"]:
        assert r["ingest_items_per_s"] > 0 and r["disk_bytes_per_item"] > 0 and r["rss_mb"] > 0
        assert r["open_s"] > 0 and r["index_from"] == "file"  # reopened from its index file
        assert set(r["search_ms"]) == {"unfiltered", "user", "user+tag"}
        assert all(v["p95"] >= v["p50"] >= 0 for v in r["search_ms"].values())


def test_bad_arguments():
    with pytest.raises(InvalidInputError):
        scale.run([0])
    with pytest.raises(InvalidInputError):
        scale.run([10], queries=0)


def test_plot_script_draws_a_png(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "plot_scale.py"
    spec = importlib.util.spec_from_file_location("plot_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = scale.run([200], queries=3, precomputed=True)
    module.plot([report], tmp_path / "scale.png")
    assert (tmp_path / "scale.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_cli_queue_benchmark(tmp_path, request, queue):
    url = request.getfixturevalue("redis_url") if queue == "redis" else "sqlite"
    out = tmp_path / "queue.json"
    args = ["bench", "scale", "--items", "150", "--precomputed", "--queue", url, "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (r,) = json.loads(out.read_text())["results"]
    assert r["queue"] == queue and r["items"] == r["stored"] == 150
    assert 0 < r["ack_ms"]["p50"] <= r["ack_ms"]["p95"] <= r["ack_ms"]["p99"]
    for key in ("acked_per_s", "indexed_per_s", "drained_per_s", "inline_batched_per_s"):
        assert r[key] > 0


def test_interleaved_rounds_report_add_then_search_beside_read_only(tmp_path):
    report = scale.run([400], queries=5, interleave=6, precomputed=True, workdir=tmp_path)
    (size,) = report["results"]
    assert set(size["search_ms"]) == {"unfiltered", "user", "user+tag", "after_add"}
    assert size["search_ms"]["after_add"]["p95"] > 0
    assert size["after_add_vs_read_only_p95"] > 0
    with pytest.raises(InvalidInputError, match="interleave"):
        scale.run([10], interleave=-1)


def test_cli_measures_postgresql_beside_the_embedded_engine(tmp_path, postgres_url):
    out = tmp_path / "scale.json"
    args = ["bench", "scale", "--items", "300", "--queries", "5", "--precomputed"]
    result = CliRunner().invoke(app, [*args, "--store", postgres_url, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [(r["store"], r["items"]) for r in report["results"]] == [
        ("sqlite", 300),
        ("postgresql", 300),
    ]
    postgres = report["results"][1]
    assert postgres["disk_bytes_per_item"] is None and postgres["ingest_items_per_s"] > 0
    only = CliRunner().invoke(
        app, [*args, "--store", postgres_url, "--store-only", "--json", str(out)]
    )
    assert only.exit_code == 0, only.output
    assert [r["store"] for r in json.loads(out.read_text())["results"]] == ["postgresql"]
    refused = CliRunner().invoke(app, [*args, "--store-only"])
    assert refused.exit_code == 2 and "--store" in refused.output


def test_lexical_postgres_benchmark_ranks_the_same_questions_three_ways(postgres_url):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "lexical_postgres", root / "benchmarks" / "lexical_postgres.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.run(root / "tests" / "data" / "locomo_mini.json", postgres_url)
    assert report["questions"] > 0
    assert set(report["systems"]) == {"bm25", "ts_rank_cd", "pg_trgm"}
    for system in report["systems"].values():
        assert 0 <= system["recall"]["5"] <= system["recall"]["10"] <= 1
        assert system["query_ms"]["p95"] >= system["query_ms"]["p50"] > 0
